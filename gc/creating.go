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

	"github.com/stacklok/go-microvm/state"
)

// creatingLeaseWait is how long the creation claim waits for a run lease
// held elsewhere: a collector holds it only while it decides.
const creatingLeaseWait = 5 * time.Second

// maxCreatingRetries bounds how often the creation claim starts over when
// its directory is removed or replaced while it claims it.
const maxCreatingRetries = 10

// WithCreating makes BeforeCreate claim dataDir, the data directory of the
// VM about to be created, before it collects: it creates dataDir if
// needed, takes its run lease and sets the run marker, as runner.NewClaim
// does. The lease is kept by this process (see state.Lease.Keep), so:
//   - the collection never reclaims dataDir, nor does any other collector
//     while this process lives or a runner started for dataDir lives
//     (runner.SpawnProcess, which released go-microvm's libkrun backend
//     calls, hands the kept lease to the runner and records it);
//   - once this process and any such runner are gone, however they ended,
//     the next collection reclaims dataDir and everything cloned into it.
//
// The claim ends, besides at exit, when the runner's Process is stopped
// (released VM.Stop and VM.Remove do that) or closed, or when the caller
// closes state.Kept(dataDir), after a failed creation say. The claim
// takes over what an earlier run left in dataDir unless a live runner is
// recorded there: then, or when the claim cannot be made, the check
// returns the error, so register it as Required.
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
		if v := JudgeState(ls.State); v.Class == ClassLive || v.Class == ClassUnknown {
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
