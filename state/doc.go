// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package state holds the persisted record of one go-microvm data directory
// and the two locks that guard it: the state lock (held means busy) and the
// run lease, a flock on the directory itself (held means alive).
//
// Files are read and written in released go-microvm's format; the two fields
// this package adds ("leased", "runner") are ignored by released readers.
// Reads never follow a symlink, never open a FIFO or device and are capped
// at MaxFileSize; saves are atomic and durable. Every lock is re-checked by
// inode after it is taken, so a holder never holds a removed file.
// On platforms without Unix descriptors the package builds as released does,
// without the lease and the probes. docs/DESIGN.md has the protocol.
package state
