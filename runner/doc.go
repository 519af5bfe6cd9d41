// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package runner starts, tracks, stops and re-attaches to go-microvm runner
// processes, and claims data directories for new VMs.
//
// A runner gets its Config as JSON in argv[1] and runs in its own session,
// so it outlives the program that started it.
//
// NewClaim first runs a bounded collection of orphaned data directories
// under the parent root; its failures are logged and never fail the claim.
//
// A Claim holds the run lease on the data directory and has set the run
// marker in its state file, so a creator killed while cloning the rootfs
// leaves an orphan that the next collection reclaims.
//
// (*Claim).Spawn hands the lease to the runner and keeps the creator's
// copy, so the data directory is kept while the runner (or a descendant
// that keeps the descriptor) or its creator lives, until the creator lets
// go with (*Process).Stop or Close. SpawnProcess does the same for a data
// directory claimed with gc.WithCreating, as released microvm.Run
// spawns its runner.
//
// (*Process).Stop checks the runner's recorded identity before every
// signal, so a recycled PID is never signalled.
//
// Attach rebuilds a handle for a runner started by an earlier process only
// when the recorded identity still names a live process, or, on Linux, for
// a runner started but never recorded, when it is the one runner holding
// the run lease.
//
// The typical use:
//
//	claim, err := runner.NewClaim(ctx, dataDir)
//	if err != nil { ... }
//	defer claim.Abort() // no-op once spawned
//	// clone the rootfs into dataDir/rootfs-work ...
//	proc, err := claim.Spawn(ctx, cfg)
package runner
