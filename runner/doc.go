// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package runner starts, stops and re-attaches to go-microvm runner
// processes, and claims data directories for new VMs.
//
// NewClaim first runs a bounded collection of dataDir itself (or of the root
// given with WithCollectRoot), which never fails the claim; the Claim then
// holds the run lease and has set the run marker, so a creator killed while
// cloning leaves an orphan. Spawn (and SpawnProcess, for a directory claimed
// with gc.WithCreating) hands the lease to the runner, which runs in its own
// session; the directory is kept while the runner or its creator lives.
// Stop signals only the process with the recorded identity; Attach finds it
// the same way, or on Linux the one runner holding the lease.
//
//	claim, err := runner.NewClaim(ctx, dataDir)
//	defer claim.Abort() // no-op once spawned
//	proc, err := claim.Spawn(ctx, cfg) // after cloning the rootfs
package runner
