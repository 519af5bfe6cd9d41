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

// lockRoot takes root's collector lock without waiting and returns its
// descriptor (O_NOFOLLOW: never through a planted symlink). It returns ErrBusy when another collector holds it,
// state.ErrNotRegular for a planted non-regular file (never opened), and
// fs.ErrPermission or errOpenToOthers when another user could hold it. A
// lock on a file unlinked meanwhile (by its holder) guards nothing: with
// retry lockRoot starts over a few times, else it returns ErrBusy.
func lockRoot(root *os.File, abs string, retry bool) (int, error) {
	name := LockName()
	path := abs + string(os.PathSeparator) + name
	rfd := int(root.Fd())
	check := func(st *unix.Stat_t) error {
		if !sysat.IsRegular(st) {
			return datadir.NotRegular("lock", path, st)
		}
		return checkOwn(st, path)
	}
	for range 8 {
		var st unix.Stat_t
		if err := sysat.Fstatat(rfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && !sysat.IsRegular(&st) {
			return -1, fmt.Errorf("lock root: %w", check(&st))
		}
		// O_NONBLOCK: open(2) never waits for the writer of a planted FIFO.
		fd, err := sysat.Openat(rfd, name, unix.O_CREAT|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return -1, fmt.Errorf("lock root: %w", &fs.PathError{Op: "open", Path: path, Err: err})
		}
		held, err := datadir.LockOpened(fd, rfd, name, path, check, nil)
		switch {
		case errors.Is(err, datadir.ErrLocked):
			return -1, fmt.Errorf("lock root: collect %s: %w", abs, ErrBusy)
		case err != nil:
			return -1, fmt.Errorf("lock root: %w", err)
		case held:
			return fd, nil
		}
		if !retry {
			break
		}
	}
	return -1, fmt.Errorf("lock root: collect %s: %w: root lock file replaced", abs, ErrBusy)
}

// lockUnusable reports whether err, from lockRoot, says that the lock file
// cannot be made for want of space or may not be used (see checkOwn).
func lockUnusable(err error) bool {
	var pe *fs.PathError
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) || errors.Is(err, datadir.ErrNotRegular) ||
		errors.As(err, &pe) && pe.Op == "use"
}

// dropIdleLock removes the collector lock file in dir when no collector
// holds it: one left by a collection over the data directory itself.
func dropIdleLock(dir *os.File, path string) {
	// None there: none is made, which a kill could leave behind.
	var st unix.Stat_t
	if sysat.Fstatat(int(dir.Fd()), LockName(), &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return
	}
	fd, err := lockRoot(dir, path, false)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_ = sysat.Unlinkat(int(dir.Fd()), LockName(), 0)
}
