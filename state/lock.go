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

// retryDelay is how often a blocked acquisition polls: it never blocks in
// flock(2) on a descriptor of a file its holder is about to delete.
const retryDelay = 10 * time.Millisecond

// LockedState is a loaded state whose state lock is held. It is not safe
// for concurrent use.
type LockedState struct {
	*State

	m        *Manager
	held     heldLock
	released bool
	loaded   State // the fields Save compares, as loaded
}

// LoadAndLock creates the data directory if missing, takes the state lock
// (waiting until ctx is done) and loads the state. It returns ctx's error,
// wrapped; fs.ErrNotExist if the directory is reclaimed while it waits;
// ErrNotRegular if the lock file is a symlink, device, socket or directory;
// and ReadFile's error, with the lock released, if the state is unreadable.
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

// TryLoadAndLock is LoadAndLock without waiting and without creating the
// data directory: it returns ErrLocked if the lock is held and an error
// wrapping fs.ErrNotExist if the directory is missing.
func (m *Manager) TryLoadAndLock() (*LockedState, error) {
	return m.loadAndLock(context.Background(), false)
}

func (m *Manager) loadAndLock(ctx context.Context, block bool) (*LockedState, error) {
	var afterLock func(string)
	if m.afterLock != nil {
		afterLock = *m.afterLock
	}
	// Every poll resolves the path afresh, so a replaced data directory
	// is noticed.
	held, err := poll(ctx, block, "lock "+m.LockPath(), func() (heldLock, error) {
		return tryLockPath(m.LockPath(), afterLock)
	})
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
	loaded := State{PID: s.PID, Leased: s.Leased, Runner: s.Runner}
	return &LockedState{State: s, m: m, held: held, loaded: loaded}, nil
}

// AcquireLease is TryLease, retried until ctx is done; it then returns
// ctx's error, wrapped. A dataDir that disappears while it waits is an
// error wrapping fs.ErrNotExist.
func AcquireLease(ctx context.Context, dataDir string) (*Lease, error) {
	return poll(ctx, true, "acquire lease on "+dataDir, func() (*Lease, error) { return TryLease(dataDir) })
}

// poll calls try once or, if block, until it returns an error other than
// ErrLocked, every retryDelay, until ctx is done: then it returns ctx's
// error after what.
func poll[T any](ctx context.Context, block bool, what string, try func() (T, error)) (T, error) {
	t := time.NewTicker(retryDelay)
	defer t.Stop()
	for {
		v, err := try()
		if !block || !errors.Is(err, ErrLocked) {
			return v, err
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// Release drops the state lock, logging a failure with slog, as released
// go-microvm's does. Later calls do nothing; Close returns the error.
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
