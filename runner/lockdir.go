// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/stacklok/go-microvm/state"
)

// lockExisting is Manager.LoadAndLockWithRetry without creating the data
// directory, so one a collector removed stays removed (fs.ErrNotExist).
func lockExisting(ctx context.Context, mgr *state.Manager, timeout time.Duration) (*state.LockedState, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		ls, err := mgr.TryLoadAndLock()
		if !errors.Is(err, state.ErrLocked) {
			return ls, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w", mgr.LockPath(), ctx.Err())
		case <-t.C:
		}
	}
}

// checkLeased returns nil when dir still names the directory that lease
// locks, and an error wrapping ErrClaimLost when dir is gone or names
// another directory: a lease on a directory no longer at dir guards
// nothing that anyone will find there. Callers hold dir's state lock, so
// no collector removes dir between this check and their save.
func checkLeased(lease *state.Lease, dir string) error {
	locked, err := lease.File().Stat()
	if err != nil {
		return fmt.Errorf("stat leased directory %s: %w", dir, err)
	}
	named, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s was removed after its lease was taken", ErrClaimLost, dir)
	case err != nil:
		return fmt.Errorf("check data directory: %w", err)
	case !os.SameFile(locked, named):
		return fmt.Errorf("%w: %s names another directory than the leased one", ErrClaimLost, dir)
	}
	return nil
}

// lockLeased takes the state lock of the claim's data directory without
// creating it, and checks that it is still the leased directory. A gone
// or replaced directory is an error wrapping ErrClaimLost, with no lock
// held.
func (c *Claim) lockLeased(ctx context.Context) (*state.LockedState, error) {
	ls, err := lockExisting(ctx, c.mgr, c.opts.lockTimeout)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s was removed after its lease was taken: %w", ErrClaimLost, c.dataDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lock state: %w", err)
	}
	if err := checkLeased(c.lease, c.dataDir); err != nil {
		_ = ls.Close()
		return nil, err
	}
	return ls, nil
}
