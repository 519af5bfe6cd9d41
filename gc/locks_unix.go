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

// rootLockFlags opens (creating if needed) the root lock file. O_NOFOLLOW
// refuses a symlink planted in its place; O_NONBLOCK keeps open(2) from
// waiting for the writer of a FIFO planted there.
const rootLockFlags = unix.O_CREAT | unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// lockRoot takes root's collector lock without waiting and returns its
// descriptor; closing it releases the lock. It returns ErrBusy when another
// collector holds it, state.ErrNotRegular for a planted non-regular file
// (never opened), and fs.ErrPermission or errOpenToOthers when another user
// could hold it. A lock on an inode unlinked meanwhile (only a holder
// unlinks it) guards nothing: with retry lockRoot starts over, else ErrBusy.
func lockRoot(root *os.File, abs string, retry bool) (int, error) {
	for attempt := 0; ; attempt++ {
		fd, err := lockRootOnce(root, abs)
		if !errors.Is(err, errLockReplaced) || !retry || attempt >= maxLockAttempts {
			if errors.Is(err, errLockReplaced) {
				err = fmt.Errorf("lock root: collect %s: %w: root lock file replaced", abs, ErrBusy)
			}
			return fd, err
		}
	}
}

// maxLockAttempts bounds lockRoot's retries: each one follows another
// collector's whole run, so a few cover any real contention.
const maxLockAttempts = 8

// errLockReplaced reports a lock taken on a lock file unlinked meanwhile.
var errLockReplaced = errors.New("root lock file replaced")

func lockRootOnce(root *os.File, abs string) (int, error) {
	name := LockName()
	path := abs + string(os.PathSeparator) + name
	rfd := int(root.Fd())
	check := func(st *unix.Stat_t) error {
		if !sysat.IsRegular(st) {
			return datadir.NotRegular("lock", path, st)
		}
		return checkOwn(st, path)
	}
	var st unix.Stat_t
	if err := sysat.Fstatat(rfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && !sysat.IsRegular(&st) {
		return -1, fmt.Errorf("lock root: %w", check(&st))
	}
	fd, err := sysat.Openat(rfd, name, rootLockFlags, 0o600)
	if err != nil {
		return -1, fmt.Errorf("lock root: %w", &fs.PathError{Op: "open", Path: path, Err: err})
	}
	held, err := datadir.LockOpened(fd, rfd, name, path, check, nil)
	switch {
	case errors.Is(err, datadir.ErrLocked):
		return -1, fmt.Errorf("lock root: collect %s: %w", abs, ErrBusy)
	case err != nil:
		return -1, fmt.Errorf("lock root: %w", err)
	case !held:
		return -1, errLockReplaced
	}
	return fd, nil
}

// lockUnusable reports whether err, from lockRoot, says that the lock file
// cannot be made for want of space, or that what has its name may not be
// used (see checkOwn): a collector then goes on without the root lock.
func lockUnusable(err error) bool {
	var pe *fs.PathError
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) || errors.Is(err, datadir.ErrNotRegular) ||
		errors.As(err, &pe) && pe.Op == "use"
}

// dropIdleLock removes the collector lock file in dir when no collector
// holds it: one left by a collection over a data directory itself (the
// root runner.NewClaim collects by default) that kept the directory then,
// and would now keep the reclaimed directory from being removed.
func dropIdleLock(dir *os.File, path string) {
	var st unix.Stat_t
	if err := sysat.Fstatat(int(dir.Fd()), LockName(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return
	}
	fd, err := lockRoot(dir, path, false)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_ = sysat.Unlinkat(int(dir.Fd()), LockName(), 0)
}
