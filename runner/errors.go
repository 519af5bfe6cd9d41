// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"

	"github.com/stacklok/go-microvm/internal/claim"
)

// Errors callers branch on, tested with errors.Is.
var (
	// ErrRunnerNotFound: no runner executable at the explicit path, in PATH,
	// or beside the current executable.
	ErrRunnerNotFound = errors.New("runner executable not found")
	// ErrNotRunning: the recorded runner is gone, a zombie, from an earlier
	// boot, or its PID now names another process.
	ErrNotRunning = errors.New("runner is not running")
	// ErrInUse: the data directory belongs to a live run.
	ErrInUse = claim.ErrInUse
	// ErrClaimDone: the claim has already spawned its runner or been aborted.
	ErrClaimDone = errors.New("claim already spawned or aborted")
	// ErrClaimLost: the data directory path no longer names the directory
	// the claim leased (something removed or replaced it); the claim is
	// dropped, and what was cloned into the old directory went with it.
	ErrClaimLost = claim.ErrLost
	// ErrStillRunning: the runner survived SIGKILL for the whole wait (for
	// example stuck in uninterruptible sleep); its state was left active.
	ErrStillRunning = errors.New("runner still running after SIGKILL")
	// ErrUnattachable: the run is live (its lease is held) but no pid is
	// recorded and its runner cannot be identified among the lease's
	// holders (always so on platforms that cannot list them, such as
	// macOS).
	ErrUnattachable = errors.New("run is live but its runner is unknown")
)
