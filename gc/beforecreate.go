// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/stacklok/go-microvm/internal/claim"
)

// BeforeCreate returns the function that released go-microvm runs as a
// preflight check (the Run field of a preflight.Check), so that every
// microvm.Run first reclaims the VMs that crashed under root. Register it
// before the disk-space check, so that the space it frees is counted:
//
//	checker.Register(preflight.Check{Name: "go-microvm-gc", Run: gc.BeforeCreate(root)})
//
// With WithCreating(dataDir) each call first claims the VM's data directory
// (register it Required):
//
//	checker.Register(preflight.Check{Name: "go-microvm-gc",
//		Run: gc.BeforeCreate(root, gc.WithCreating(dataDir)), Required: true})
//
// Each call collects with DefaultCreateBudget (opts come after it) and logs
// what it did; it returns an error only when the WithCreating claim fails
// or ctx is done, never for the collection itself.
func BeforeCreate(root string, opts ...Option) func(context.Context) error {
	var given options
	for _, opt := range opts {
		opt(&given)
	}
	logger := cmp.Or(given.logger, slog.Default())
	all := append([]Option{WithBudget(DefaultCreateBudget)}, opts...)
	all = append(all, WithLogger(logger))
	return func(ctx context.Context) error {
		if given.creating != "" {
			dir, err := filepath.Abs(given.creating)
			if err == nil {
				_, err = claim.Take(ctx, dir, claim.Options{LeaseWait: claim.LeaseWait,
					LockWait: claim.LockWait, Keep: true, Logger: logger})
			}
			if err != nil {
				logger.Warn("gc before create: cannot claim the new data directory", "dir", given.creating, "error", err)
				return fmt.Errorf("gc before create: %w", err)
			}
		}
		rep, err := CollectContext(ctx, root, all...)
		logCreateCollection(logger, root, rep, err)
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("reclaim crashed VMs under %s: %w", root, cerr)
		}
		return nil
	}
}

// WithCreating makes BeforeCreate claim dataDir before it collects, as
// runner.NewClaim does, keeping the lease in this process (state.Kept) so
// no collector reclaims dataDir while this process or its runner lives,
// and the next one does once both are gone. The claim ends when the
// runner's Process is stopped or closed, or state.Kept(dataDir) is closed.
// A live runner recorded in dataDir makes the check fail.
func WithCreating(dataDir string) Option {
	return func(o *options) { o.creating = dataDir }
}

// logCreateCollection logs the outcome of a collection that ran before a
// VM's creation: it never fails the creation, so the log is where its
// failures go.
func logCreateCollection(logger *slog.Logger, root string, rep *Report, err error) {
	switch {
	case errors.Is(err, ErrBusy):
		logger.Debug("gc before create: skipped, another collector holds the root", "root", root)
	case err != nil && rep == nil:
		logger.Warn("gc before create: collection failed", "root", root, "error", err)
	}
	if rep == nil {
		return
	}
	// Each error was already logged by the collection itself.
	for _, k := range rep.Kept {
		if k.Class == ClassOrphan {
			logger.Warn("gc before create: orphan not reclaimed", "path", k.Path, "reason", k.Reason, "detail", k.Detail)
		}
	}
	if len(rep.Reclaimed) > 0 || rep.Deferred || len(rep.Errors) > 0 {
		logger.Info("gc before create", "root", root, "reclaimed", len(rep.Reclaimed),
			"bytes_freed", rep.BytesFreed, "deferred", rep.Deferred, "errors", len(rep.Errors))
	}
}
