// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package sysat

import "golang.org/x/sys/unix"

func Statx(dirfd int, name string, flags int, mask int, sx *unix.Statx_t) error {
	return retry(func() error { return unix.Statx(dirfd, name, flags, mask, sx) })
}

// NameToHandleAt follows a symlink only with unix.AT_SYMLINK_FOLLOW.
func NameToHandleAt(dirfd int, name string, flags int) (h unix.FileHandle, mnt int, err error) {
	mnt, err = retry2(func() (m int, err error) { h, m, err = unix.NameToHandleAt(dirfd, name, flags); return m, err })
	return h, mnt, err
}

func Getdents(fd int, buf []byte) (int, error) {
	return retry2(func() (int, error) { return unix.Getdents(fd, buf) })
}
