// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package gc finds the data directories of go-microvm VMs under a root,
// classifies each one, and reclaims those whose VM is gone.
//
// A candidate is a directory holding a go-microvm-state.json, root or down
// to WithDepth below it, reached without following a symlink and never
// inside a data directory's rootfs-work or cache, nor inside a name starting
// with OwnPrefix. Its class is a pure function of observed facts
// (docs/DESIGN.md has the table); only ClassOrphan is reclaimed, and only
// after the decision is made again under the directory's run lease and state
// lock. Scan and Orphans create nothing. Collect holds this user's root lock
// (a second collector gets ErrBusy), removes only go-microvm's own files,
// never crosses a mount or follows a symlink, and is crash-safe: a collector
// killed at any instant leaves nothing the next run does not reclaim. One
// directory's failure is reported in Report.Errors with its path and never
// stops the sweep.
package gc
