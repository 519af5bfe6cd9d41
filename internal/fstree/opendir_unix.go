// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// OpenDir opens the directory rel below the open directory parent without
// following a symlink anywhere in rel; "" or "." dups parent. An absolute
// rel or a ".." component is EINVAL, a symlink or non-directory component
// ELOOP or ENOTDIR, in an *os.PathError naming the components walked.
func OpenDir(parent *os.File, rel string) (*os.File, error) {
	path := parent.Name()
	if strings.HasPrefix(rel, "/") || slices.Contains(strings.Split(rel, "/"), "..") {
		return nil, &os.PathError{Op: "openat", Path: filepath.Join(path, rel), Err: unix.EINVAL}
	}
	// Fd is harmless: a directory is never non-blocking. F_DUPFD never waits.
	fd, err := unix.FcntlInt(parent.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	runtime.KeepAlive(parent)
	if err != nil {
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	for c := range strings.SplitSeq(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		path = filepath.Join(path, c)
		next, err := sysat.Openat(fd, c, sysat.DirFlags, 0)
		_ = unix.Close(fd)
		if err != nil {
			return nil, &os.PathError{Op: "openat", Path: path, Err: err}
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), path), nil
}
