// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package sysat

import "golang.org/x/sys/unix"

// Statx stats name relative to dirfd into sx, asking for the fields in
// mask, as statx(2) (Linux 4.11).
func Statx(dirfd int, name string, flags int, mask int, sx *unix.Statx_t) error {
	return retry(func() error { return unix.Statx(dirfd, name, flags, mask, sx) })
}

// NameToHandleAt returns the file handle and mount id of name relative to
// dirfd, as name_to_handle_at(2); it follows a symlink only with
// unix.AT_SYMLINK_FOLLOW in flags.
func NameToHandleAt(dirfd int, name string, flags int) (unix.FileHandle, int, error) {
	for {
		h, mnt, err := unix.NameToHandleAt(dirfd, name, flags)
		if err != unix.EINTR {
			return h, mnt, err
		}
	}
}

// Getdents reads directory entries (struct linux_dirent64) from the
// directory fd into buf, as getdents64(2).
func Getdents(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err != unix.EINTR {
			return n, err
		}
	}
}
