// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package sysat

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func IsRegular(st *unix.Stat_t) bool { return fileType(st) == unix.S_IFREG }
func IsDir(st *unix.Stat_t) bool     { return fileType(st) == unix.S_IFDIR }
func IsSymlink(st *unix.Stat_t) bool { return fileType(st) == unix.S_IFLNK }
func IsFIFO(st *unix.Stat_t) bool    { return fileType(st) == unix.S_IFIFO }

// fileType converts for the systems whose Mode is 16 bits wide.
func fileType(st *unix.Stat_t) uint32 { return uint32(st.Mode) & unix.S_IFMT }

// FileType names the file type in a stat st_mode, for errors.
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
