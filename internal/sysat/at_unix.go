// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package sysat

import (
	"time"

	"golang.org/x/sys/unix"
)

// DirFlags opens a directory for reading, never through a symlink at the
// final component (ELOOP or ENOTDIR instead), never into a child process.
const DirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// Openat is OpenatNow that, out of descriptors (EMFILE, ENFILE), waits
// about half a second in all for other goroutines to close some.
func Openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for attempt := 0; ; attempt++ {
		fd, err := OpenatNow(dirfd, name, flags, mode)
		if err != unix.EMFILE && err != unix.ENFILE || attempt >= 60 {
			return fd, err
		}
		time.Sleep(time.Duration(min(attempt+1, 10)) * time.Millisecond)
	}
}

// OpenatNow is openat(2), for a caller with descriptors of its own to
// close first when out of them.
func OpenatNow(dirfd int, name string, flags int, mode uint32) (int, error) {
	return retry2(func() (int, error) { return unix.Openat(dirfd, name, flags, mode) })
}

func Fstatat(dirfd int, name string, st *unix.Stat_t, flags int) error {
	return retry(func() error { return unix.Fstatat(dirfd, name, st, flags) })
}

func Fstat(fd int, st *unix.Stat_t) error { return retry(func() error { return unix.Fstat(fd, st) }) }

func Unlinkat(dirfd int, name string, flags int) error {
	return retry(func() error { return unix.Unlinkat(dirfd, name, flags) })
}

func Mkdirat(dirfd int, name string, mode uint32) error {
	return retry(func() error { return unix.Mkdirat(dirfd, name, mode) })
}

func Renameat(olddirfd int, oldname string, newdirfd int, newname string) error {
	return retry(func() error { return unix.Renameat(olddirfd, oldname, newdirfd, newname) })
}

func Fchmod(fd int, mode uint32) error { return retry(func() error { return unix.Fchmod(fd, mode) }) }

func Fchmodat(dirfd int, name string, mode uint32, flags int) error {
	return retry(func() error { return unix.Fchmodat(dirfd, name, mode, flags) })
}

func Faccessat(dirfd int, name string, mode uint32, flags int) error {
	return retry(func() error { return unix.Faccessat(dirfd, name, mode, flags) })
}

func Read(fd int, p []byte) (int, error) {
	return retry2(func() (int, error) { return unix.Read(fd, p) })
}

func retry(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

func retry2(fn func() (int, error)) (int, error) {
	for {
		if n, err := fn(); err != unix.EINTR {
			return n, err
		}
	}
}
