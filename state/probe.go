// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/sysat"
)

// ProbeLease reports whether the lease on dataDir is held right now; it
// creates nothing, so it works on a read-only filesystem. A missing dataDir
// is not held. For an instant the probe holds the lease itself.
func ProbeLease(dataDir string) (held bool, err error) {
	fd, err := sysat.Openat(unix.AT_FDCWD, dataDir, sysat.DirFlags, 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: dataDir, Err: err}
	}
	defer unix.Close(fd)
	return datadir.NewDir(fd, dataDir).ProbeLease()
}
