// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The *At functions below are the single home of the descriptor-relative
// system calls that the walks here, package state and package gc share.
// Each retries while a signal interrupts it, and returns the bare errno
// (a syscall.Errno) so callers can wrap it in an error naming their path.

// WithFd runs fn on f's descriptor, keeping f open and alive while fn runs
// and in its current (non-)blocking mode, which f.Fd() would not. It
// returns fn's error, or the error of reaching the descriptor.
func WithFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// Openat opens name relative to the directory dirfd, as openat(2).
func Openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// OpenDirAt opens the directory name relative to dirfd without following
// a symlink at name: a symlink fails with ELOOP or ENOTDIR.
func OpenDirAt(dirfd int, name string) (int, error) { return openDirAt(dirfd, name) }

// Lstatat stats name relative to dirfd into st without following a symlink.
func Lstatat(dirfd int, name string, st *unix.Stat_t) error {
	return retry(func() error { return unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW) })
}

// Fstat stats the open descriptor fd into st.
func Fstat(fd int, st *unix.Stat_t) error {
	return retry(func() error { return unix.Fstat(fd, st) })
}

// UnlinkAt removes name relative to dirfd: a non-directory, or, with
// unix.AT_REMOVEDIR in flags, an empty directory.
func UnlinkAt(dirfd int, name string, flags int) error { return unlinkAt(dirfd, name, flags) }

// MkdirAt creates the directory name relative to dirfd.
func MkdirAt(dirfd int, name string, mode uint32) error {
	return retry(func() error { return unix.Mkdirat(dirfd, name, mode) })
}

// RenameAt renames fromName relative to fromfd to toName relative to tofd,
// atomically.
func RenameAt(fromfd int, fromName string, tofd int, toName string) error {
	return retry(func() error { return unix.Renameat(fromfd, fromName, tofd, toName) })
}

// Flock applies the flock(2) operation how to fd. With unix.LOCK_NB in
// how, a lock held elsewhere fails with EWOULDBLOCK at once.
func Flock(fd int, how int) error {
	return retry(func() error { return unix.Flock(fd, how) })
}

// Read reads from fd into buf, as read(2).
func Read(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Read(fd, buf)
		if err != unix.EINTR {
			return n, err
		}
	}
}

// FileType names the file type in mode (a stat st_mode), for errors that
// say why a file was refused.
func FileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "device"
	}
	return fmt.Sprintf("type %#o", mode&unix.S_IFMT)
}

func retry(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}
