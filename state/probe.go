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

// ProbeLease reports whether the lease on dataDir is held right now. It
// opens dataDir read-only without following a symlink, tries a
// non-blocking exclusive flock and drops it at once: it creates nothing and
// works on a read-only filesystem. A missing dataDir is "not held" with a
// nil error; any other failure (dataDir a symlink or not a directory, say)
// is an error naming the path. For that instant the probe itself holds the
// lease, so a concurrent TryLease can see ErrLocked.
func ProbeLease(dataDir string) (held bool, err error) {
	fd, err := sysat.Openat(unix.AT_FDCWD, dataDir, sysat.DirFlags, 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: dataDir, Err: err}
	}
	// Closing drops the lock; a lock fd has no data to lose.
	defer func() { _ = unix.Close(fd) }()
	return datadir.NewDir(fd, dataDir).ProbeLease()
}
