// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package fstree removes and measures directory trees relative to directory
// descriptors, never following a symlink, never entering another mount
// (Result.Mounts) or a directory Options.InUse names (Result.InUse): both
// stay in place with their ancestors. Entries others remove meanwhile are
// simply gone; a hard-linked file is counted once; descriptors are bounded
// whatever the depth. When the context ends, the walk stops between two
// entries with ErrBudget, leaving a smaller intact tree.
package fstree
