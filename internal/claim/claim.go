// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package claim takes the creation claim on a data directory (its run
// lease held, its run marker set): the one implementation behind
// runner.NewClaim and gc.WithCreating.
package claim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/state"
)

// Default waits for a run lease held elsewhere (a collector holds it only
// while it decides) and for a state lock, and how often Take starts over
// when the directory is removed or replaced while it claims it.
const (
	LeaseWait  = 5 * time.Second
	LockWait   = 10 * time.Second
	MaxRetries = 10
)

// Errors of Take and Lock, re-exported by runner.
var (
	ErrInUse = errors.New("data directory is in use by a live run")
	ErrLost  = errors.New("data directory was replaced under the claim")
)

// Options configure Take. Logger is required.
type Options struct {
	LeaseWait, LockWait time.Duration
	// Keep makes the claim this process's (state.Lease.Keep): Take reuses
	// a lease kept on dir, never closes it, and keeps the one it returns.
	Keep   bool
	Mark   func(*state.State) // sets the caller's fields of the marked state
	Logger *slog.Logger
	// Test hooks, nil outside tests: MkdirAll replaces os.MkdirAll,
	// BeforeLease runs before the lease is taken, Leased after.
	MkdirAll            func(string, os.FileMode) error
	BeforeLease, Leased func(dir string)
}

// Take creates dir (an absolute path), takes its run lease and sets its
// run marker under the state lock, starting over when dir is removed or
// replaced meanwhile, and returns the lease. Errors wrap ErrInUse when a
// live run owns dir (its lease stays held past LeaseWait, or judge.State
// keeps it as live or unknown) and ErrLost when dir keeps being replaced; on
// error the state is unchanged and Take left no lease of its own open.
func Take(ctx context.Context, dir string, o Options) (*state.Lease, error) {
	for attempt := 0; ; attempt++ {
		lease, kept, err := acquire(ctx, dir, o)
		if err == nil {
			if o.Leased != nil {
				o.Leased(dir)
			}
			if err = mark(ctx, dir, lease, o); err == nil && o.Keep {
				err = lease.Keep(dir)
			}
			if err == nil {
				o.Logger.Debug("claimed data directory", "dir", dir)
				return lease, nil
			}
			if !kept { // a kept lease may cover a live run of this process
				_ = lease.Close()
			}
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrLost) || attempt >= MaxRetries {
			return nil, err
		}
		o.Logger.Debug("data directory removed or replaced while claiming it; claiming it again", "dir", dir, "error", err)
	}
}

func acquire(ctx context.Context, dir string, o Options) (lease *state.Lease, kept bool, err error) {
	if l := state.Kept(dir); o.Keep && l != nil {
		if Check(l, dir) == nil {
			return l, true, nil
		}
		_ = l.Close() // it locks a directory no longer at dir
	}
	mkdirAll := o.MkdirAll
	if mkdirAll == nil {
		mkdirAll = os.MkdirAll
	}
	if err := mkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("claim %s: create data directory: %w", dir, err)
	}
	if o.BeforeLease != nil {
		o.BeforeLease(dir)
	}
	lctx, cancel := context.WithTimeout(ctx, o.LeaseWait)
	defer cancel()
	lease, err = state.AcquireLease(lctx, dir)
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, false, fmt.Errorf("claim %s: %w: run lease still held after %s", dir, ErrInUse, o.LeaseWait)
	}
	if err != nil {
		return nil, false, fmt.Errorf("claim %s: take run lease: %w", dir, err)
	}
	return lease, false, nil
}

// mark sets the run marker, with the lease held, in the leased directory
// only: an error wrapping ErrLost means dir no longer names it.
func mark(ctx context.Context, dir string, lease *state.Lease, o Options) error {
	ls, err := Lock(ctx, dir, lease, o.LockWait)
	if err != nil {
		return fmt.Errorf("claim %s: %w", dir, err)
	}
	defer ls.Release()
	// With the lease held, only a released runner (it holds none) may live.
	if ls.Active && ls.PID > 0 {
		if v := judge.State(ls.State); v.Class == judge.ClassLive || v.Class == judge.ClassUnknown {
			return fmt.Errorf("claim %s: %w: state records runner pid %d (%s: %s)", dir, ErrInUse, ls.PID, v.Reason, v.Detail)
		}
	}
	ls.Active, ls.PID, ls.PIDStartTime, ls.Runner = false, 0, time.Time{}, nil
	ls.Leased, ls.CreatedAt = true, time.Now()
	if o.Mark != nil {
		o.Mark(ls.State)
	}
	if err := ls.Save(); err != nil {
		return fmt.Errorf("claim %s: set run marker: %w", dir, err)
	}
	return nil
}

// Lock takes dir's state lock without creating dir, waiting up to wait,
// and checks that dir still names the directory lease locks. A gone or
// replaced directory is an error wrapping ErrLost, with no lock held.
func Lock(ctx context.Context, dir string, lease *state.Lease, wait time.Duration) (*state.LockedState, error) {
	ls, err := LockExisting(ctx, state.NewManager(dir), wait)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s was removed after its lease was taken: %w", ErrLost, dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	if err := Check(lease, dir); err != nil {
		_ = ls.Close()
		return nil, err
	}
	return ls, nil
}

// Check returns nil when dir still names the directory that lease locks,
// and an error wrapping ErrLost when dir is gone or names another one.
func Check(lease *state.Lease, dir string) error {
	locked, err := lease.File().Stat()
	if err != nil {
		return fmt.Errorf("stat leased directory %s: %w", dir, err)
	}
	named, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !os.SameFile(locked, named) {
		return fmt.Errorf("%w: %s was removed or replaced after its lease was taken", ErrLost, dir)
	}
	return err
}

// LockExisting is Manager.LoadAndLockWithRetry without creating the data
// directory, so one a collector removed stays removed (fs.ErrNotExist).
func LockExisting(ctx context.Context, mgr *state.Manager, wait time.Duration) (*state.LockedState, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		ls, err := mgr.TryLoadAndLock()
		if !errors.Is(err, state.ErrLocked) {
			return ls, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w", mgr.LockPath(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
