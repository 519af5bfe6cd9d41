// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// retryDelay is how often a blocked acquisition polls. Each poll opens the
// path anew, so a waiter never sits on a descriptor of a file that its
// holder is about to delete. A blocking flock(2) would sit on exactly such
// a descriptor, which is also why github.com/gofrs/flock (a poll of the
// same kind, without the file-type checks) is not used here.
const retryDelay = 10 * time.Millisecond

// LockedState is a loaded state whose state lock is held. It is not safe
// for concurrent use.
type LockedState struct {
	*State

	m        *Manager
	held     heldLock
	released bool
}

// LoadAndLock creates the data directory if it is missing (as released
// go-microvm does), takes the state lock, blocking until ctx is done, and
// loads the state (a missing state file is a fresh default state). It
// returns ctx's error, wrapped, when ctx ends first; an error wrapping
// fs.ErrNotExist when the data directory disappears while it waits (a
// collector reclaimed it: the directory is not created again); an error
// matching ErrNotRegular, naming the lock file, when the lock's name holds
// a symlink, device, socket or directory (never opened, never waited on;
// a FIFO is locked like a file, see the package doc); and ReadFile's
// error, with the lock already released, when the state file cannot be
// read.
func (m *Manager) LoadAndLock(ctx context.Context) (*LockedState, error) {
	if err := os.MkdirAll(m.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return m.loadAndLock(ctx, true)
}

// LoadAndLockWithRetry is LoadAndLock bounded by timeout: when the lock is
// still held after timeout it returns an error that says "timeout", as
// released go-microvm's does, and wraps context.DeadlineExceeded.
func (m *Manager) LoadAndLockWithRetry(ctx context.Context, timeout time.Duration) (*LockedState, error) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ls, err := m.LoadAndLock(tctx)
	if err != nil && tctx.Err() != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("timeout waiting for state lock after %s: %w", timeout, err)
	}
	return ls, err
}

// TryLoadAndLock takes the state lock without blocking and loads the state.
// It returns an error matching ErrLocked if the lock is held, and an error
// wrapping fs.ErrNotExist if the data directory does not exist: unlike
// LoadAndLock it creates no directory, only the lock file, so that a
// collector never brings back a directory it raced with. The lock file's
// type is checked as LoadAndLock checks it. A state file that cannot be
// read is returned as ReadFile's error, with the lock released.
func (m *Manager) TryLoadAndLock() (*LockedState, error) {
	return m.loadAndLock(context.Background(), false)
}

func (m *Manager) loadAndLock(ctx context.Context, block bool) (*LockedState, error) {
	var afterLock func(string)
	if m.afterLock != nil {
		afterLock = *m.afterLock
	}
	held, err := lockStateFile(ctx, m.LockPath(), block, afterLock)
	if err != nil {
		return nil, err
	}
	s, err := m.Load()
	if err != nil {
		if uerr := unlockHeld(held); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unlock %s: %w", m.LockPath(), uerr))
		}
		return nil, err
	}
	return &LockedState{State: s, m: m, held: held}, nil
}

// lockStateFile takes the state lock at path, a writer's: the lock file is
// created when missing. It is the collector's lock with the path
// resolved afresh by every open and by the inode check, so a data
// directory replaced under its path is noticed too; with block it polls
// until ctx is done. afterLock is a test's hook (see Manager), else nil.
func lockStateFile(ctx context.Context, path string, block bool, afterLock func(string)) (heldLock, error) {
	held, err := tryLockPath(path, afterLock)
	if !block {
		return held, err
	}
	t := time.NewTicker(retryDelay)
	defer t.Stop()
	for err != nil && errors.Is(err, ErrLocked) {
		select {
		case <-ctx.Done():
			var none heldLock
			return none, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-t.C:
		}
		held, err = tryLockPath(path, afterLock)
	}
	return held, err
}

// Release drops the state lock, as released go-microvm's Release does: it
// has no result, and a failure to unlock is logged with slog's default
// logger (the lock is then dropped when the process exits). It is safe to
// call more than once; later calls do nothing. Callers that want the error
// use Close.
func (ls *LockedState) Release() {
	if err := ls.Close(); err != nil {
		slog.Warn("releasing state lock", "path", ls.m.LockPath(), "error", err)
	}
}

// Close drops the state lock like Release and returns the unlock error.
// It is safe to call more than once; later calls return nil.
func (ls *LockedState) Close() error {
	if ls.released {
		return nil
	}
	ls.released = true
	if err := unlockHeld(ls.held); err != nil {
		return fmt.Errorf("unlock %s: %w", ls.m.LockPath(), err)
	}
	return nil
}
