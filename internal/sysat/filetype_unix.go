// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package sysat

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// IsRegular reports whether st describes a regular file.
func IsRegular(st *unix.Stat_t) bool { return fileType(st) == unix.S_IFREG }

// IsDir reports whether st describes a directory.
func IsDir(st *unix.Stat_t) bool { return fileType(st) == unix.S_IFDIR }

// IsSymlink reports whether st describes a symbolic link.
func IsSymlink(st *unix.Stat_t) bool { return fileType(st) == unix.S_IFLNK }

// IsFIFO reports whether st describes a FIFO (a named pipe).
func IsFIFO(st *unix.Stat_t) bool { return fileType(st) == unix.S_IFIFO }

// fileType is st's st_mode file type bits. The conversion is for the
// systems whose Mode is 16 bits wide.
func fileType(st *unix.Stat_t) uint32 { return uint32(st.Mode) & unix.S_IFMT }

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
