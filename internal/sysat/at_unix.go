// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package sysat

import (
	"time"

	"golang.org/x/sys/unix"
)

// DirFlags opens a directory for reading, never through a symbolic link
// at the final component (it fails with ELOOP or ENOTDIR instead) and
// never into a child process.
const DirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// Openat opens name relative to the directory dirfd, as openat(2). When
// the process or the system is out of descriptors (EMFILE, ENFILE), it
// waits a little for other goroutines to close theirs and tries again,
// for about half a second in all before it returns the error: a walk
// short of descriptors slows down instead of failing.
func Openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for attempt := 0; ; attempt++ {
		fd, err := OpenatNow(dirfd, name, flags, mode)
		if !WaitForFiles(err, attempt) {
			return fd, err
		}
	}
}

// OpenatNow is Openat without the wait for descriptors, for a caller
// that has descriptors of its own to close first.
func OpenatNow(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// maxFileWaits bounds the waits of WaitForFiles: about half a second in
// all.
const maxFileWaits = 60

// WaitForFiles reports whether an open that failed with err, on its
// attempt (counted from 0), is worth another attempt: err says the
// process or the system is out of descriptors and the attempts are not
// used up. Then it has waited a little first, longer each time.
func WaitForFiles(err error, attempt int) bool {
	if err != unix.EMFILE && err != unix.ENFILE || attempt >= maxFileWaits {
		return false
	}
	time.Sleep(time.Duration(min(attempt+1, 10)) * time.Millisecond)
	return true
}

// Fstatat stats name relative to dirfd into st, as fstatat(2); with
// unix.AT_SYMLINK_NOFOLLOW in flags a symlink is stated, not followed.
func Fstatat(dirfd int, name string, st *unix.Stat_t, flags int) error {
	return retry(func() error { return unix.Fstatat(dirfd, name, st, flags) })
}

// Fstat stats the open descriptor fd into st.
func Fstat(fd int, st *unix.Stat_t) error {
	return retry(func() error { return unix.Fstat(fd, st) })
}

// Unlinkat removes name relative to dirfd: a non-directory, or, with
// unix.AT_REMOVEDIR in flags, an empty directory.
func Unlinkat(dirfd int, name string, flags int) error {
	return retry(func() error { return unix.Unlinkat(dirfd, name, flags) })
}

// Mkdirat creates the directory name relative to dirfd.
func Mkdirat(dirfd int, name string, mode uint32) error {
	return retry(func() error { return unix.Mkdirat(dirfd, name, mode) })
}

// Renameat renames oldname relative to olddirfd to newname relative to
// newdirfd, atomically.
func Renameat(olddirfd int, oldname string, newdirfd int, newname string) error {
	return retry(func() error { return unix.Renameat(olddirfd, oldname, newdirfd, newname) })
}

// Fchmod sets the mode of the open descriptor fd.
func Fchmod(fd int, mode uint32) error {
	return retry(func() error { return unix.Fchmod(fd, mode) })
}

// Fchmodat sets the mode of name relative to dirfd; with
// unix.AT_SYMLINK_NOFOLLOW in flags it never follows a symlink (and fails
// where the system cannot change a mode without following).
func Fchmodat(dirfd int, name string, mode uint32, flags int) error {
	return retry(func() error { return unix.Fchmodat(dirfd, name, mode, flags) })
}

// Faccessat checks whether this process may access name relative to dirfd
// in mode; with unix.AT_EACCESS in flags, as its effective IDs.
func Faccessat(dirfd int, name string, mode uint32, flags int) error {
	return retry(func() error { return unix.Faccessat(dirfd, name, mode, flags) })
}

// FcntlInt performs the fcntl(2) command cmd with the argument arg on fd.
func FcntlInt(fd uintptr, cmd, arg int) (int, error) {
	for {
		r, err := unix.FcntlInt(fd, cmd, arg)
		if err != unix.EINTR {
			return r, err
		}
	}
}

// Read reads from fd into p, as read(2).
func Read(fd int, p []byte) (int, error) {
	for {
		n, err := unix.Read(fd, p)
		if err != unix.EINTR {
			return n, err
		}
	}
}

func retry(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}
