// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/sysat"
)

// lockRoot takes root's collector lock without waiting, never through a
// symlink, and returns its descriptor. ErrBusy: another collector holds it
// or keeps replacing its file. A lock file another user could hold, or not
// a regular file (never opened), is an error lockUnusable accepts.
func lockRoot(root *os.File, abs string) (int, error) {
	name := LockName()
	path := abs + string(os.PathSeparator) + name
	rfd := int(root.Fd())
	check := func(st *unix.Stat_t) error {
		if !sysat.IsRegular(st) {
			return datadir.NotRegular("lock", path, st)
		}
		return checkOwn(st, path)
	}
	fd, err := datadir.Lock(rfd, name, path, check, nil, func() (int, error) {
		return datadir.OpenAt(rfd, name, path, "lock", unix.O_CREAT|unix.O_RDONLY, sysat.IsRegular)
	})
	switch {
	case errors.Is(err, datadir.ErrLocked):
		return -1, fmt.Errorf("lock root: collect %s: %w", abs, ErrBusy)
	case errors.Is(err, datadir.ErrReplaced):
		return -1, fmt.Errorf("lock root: collect %s: %w: root lock file replaced", abs, ErrBusy)
	case err != nil:
		return -1, fmt.Errorf("lock root: %w", err)
	}
	return fd, nil
}

// lockUnusable reports whether err, from lockRoot, says that the lock file
// cannot be made for want of space or may not be used (see checkOwn).
func lockUnusable(err error) bool {
	var pe *fs.PathError
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) || errors.Is(err, datadir.ErrNotRegular) ||
		errors.As(err, &pe) && pe.Op == "use"
}
