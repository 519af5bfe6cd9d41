// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/stacklok/go-microvm/internal/claim"
)

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
func claimCreating(ctx context.Context, dir string, logger *slog.Logger) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("claim %s: %w", dir, err)
	}
	_, err = claim.Take(ctx, dir, claim.Options{LeaseWait: claim.LeaseWait, LockWait: claim.LockWait,
		Keep: true, Logger: logger})
	return err
}
