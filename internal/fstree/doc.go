// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package fstree removes and measures directory trees relative to directory
// descriptors, never following a symlink, never entering another mount or
// a directory Options.InUse names. Entries others remove meanwhile are
// simply gone.
package fstree
