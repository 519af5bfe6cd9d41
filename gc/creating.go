// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/state"
)

// creatingLeaseWait is how long the creation claim waits for a run lease
// held elsewhere: a collector holds it only while it decides.
const creatingLeaseWait = 5 * time.Second

// maxCreatingRetries bounds how often the creation claim starts over when
// its directory is removed or replaced while it claims it.
const maxCreatingRetries = 10

// WithCreating makes BeforeCreate claim dataDir before it collects, as
// runner.NewClaim does, keeping the lease in this process (state.Kept) so
// no collector reclaims dataDir while this process or its runner lives,
// and the next one does once both are gone. The claim ends when the
// runner's Process is stopped or closed, or state.Kept(dataDir) is closed.
// A live runner recorded in dataDir makes the check fail.
func WithCreating(dataDir string) Option {
	return func(o *options) { o.creating = dataDir }
}

// claimCreating claims dir for a creation by this process (WithCreating).
func claimCreating(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("claim %s: %w", dir, err)
	}
	for attempt := 0; ; attempt++ {
		lease, kept, err := creatingLease(ctx, dir)
		if err == nil {
			err = markCreating(ctx, dir, lease)
		}
		if err == nil {
			return lease.Keep(dir)
		}
		// A lease kept from before stays kept: it may cover a live run of
		// this process. A new one is ours alone, and closing it drops it.
		if !kept {
			_ = lease.Close()
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt >= maxCreatingRetries {
			return fmt.Errorf("claim %s: %w", dir, err)
		}
	}
}

// creatingLease returns the lease this process keeps on dir when it still
// locks the directory dir names (kept: a creation retried after a failed
// one, or over a VM of this process), else creates dir and takes its
// lease.
func creatingLease(ctx context.Context, dir string) (lease *state.Lease, kept bool, err error) {
	if l := state.Kept(dir); l != nil {
		if sameDir(l, dir) == nil {
			return l, true, nil
		}
		// It locks a directory no longer at dir: nothing to protect here.
		_ = l.Close()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create data directory: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, creatingLeaseWait)
	defer cancel()
	lease, err = state.AcquireLease(lctx, dir)
	return lease, false, err
}

// markCreating sets the run marker of dir, which lease locks, under the
// state lock: the state then reads as a run covered by a lease that has
// no runner yet.
func markCreating(ctx context.Context, dir string, lease *state.Lease) error {
	ls, err := state.NewManager(dir).LoadAndLockWithRetry(ctx, creatingLeaseWait)
	if err != nil {
		return err
	}
	defer ls.Release()
	// LoadAndLock makes dir again when it is gone: the marker must go into
	// the leased directory only.
	if err := sameDir(lease, dir); err != nil {
		return err
	}
	if ls.Active && ls.PID > 0 {
		if v := judge.State(ls.State); v.Class == ClassLive || v.Class == ClassUnknown {
			return fmt.Errorf("state records a live runner, pid %d (%s: %s)", ls.PID, v.Reason, v.Detail)
		}
	}
	ls.Active = false
	ls.PID = 0
	ls.PIDStartTime = time.Time{}
	ls.Runner = nil
	ls.Leased = true
	ls.CreatedAt = time.Now()
	return ls.Save()
}

// sameDir returns nil when dir names the directory lease locks, and an
// error wrapping fs.ErrNotExist when it is gone or names another one.
func sameDir(lease *state.Lease, dir string) error {
	locked, err := lease.File().Stat()
	if err != nil {
		return err
	}
	named, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !os.SameFile(locked, named) {
		return fmt.Errorf("%s was replaced while claimed: %w", dir, fs.ErrNotExist)
	}
	return nil
}
