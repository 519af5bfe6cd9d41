// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// OpenDir opens the directory rel below the open directory parent, one
// component at a time with O_NOFOLLOW|O_DIRECTORY, so no symlink anywhere
// in rel is followed. rel "" or "." returns a new descriptor of parent.
// An absolute rel or a ".." component is refused with EINVAL; a symlink
// or non-directory component fails with ELOOP or ENOTDIR. Errors are
// *os.PathError naming parent's name joined with the components walked.
func OpenDir(parent *os.File, rel string) (*os.File, error) {
	base := parent.Name()
	if strings.HasPrefix(rel, "/") {
		return nil, &os.PathError{Op: "openat", Path: rel, Err: unix.EINVAL}
	}
	var comps []string
	for c := range strings.SplitSeq(rel, "/") {
		switch c {
		case "", ".":
		case "..":
			return nil, &os.PathError{Op: "openat", Path: filepath.Join(base, rel), Err: unix.EINVAL}
		default:
			comps = append(comps, c)
		}
	}
	rc, err := parent.SyscallConn()
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: base, Err: err}
	}
	fd, path := -1, base
	cerr := rc.Control(func(pfd uintptr) {
		if len(comps) == 0 {
			fd, err = sysat.FcntlInt(pfd, unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				err = &os.PathError{Op: "fcntl", Path: path, Err: err}
			}
			return
		}
		cur := int(pfd)
		for _, c := range comps {
			path = filepath.Join(path, c)
			next, oerr := sysat.Openat(cur, c, sysat.DirFlags, 0)
			if cur != int(pfd) {
				closeFD(cur)
			}
			if oerr != nil {
				err = &os.PathError{Op: "openat", Path: path, Err: oerr}
				return
			}
			cur = next
		}
		fd = cur
	})
	if cerr != nil {
		return nil, &os.PathError{Op: "openat", Path: base, Err: cerr}
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}
