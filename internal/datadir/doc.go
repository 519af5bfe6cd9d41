// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package datadir reads the state file and takes or probes the run lease
// and the state lock relative to an open data directory descriptor,
// resolving no path again. Package state (with AT_FDCWD) and gc's walk both
// use it, so each rule has one implementation. It knows the state file's
// bytes, not its schema: callers pass the parser (state.Parse).
package datadir

import "errors"

// Names and limits package state re-exports; see there.
const (
	FileName     = "go-microvm-state.json"
	LockFileName = "go-microvm-state.lock"
	MaxFileSize  = 64 << 10
	// OpParse is the Op of a bad state file's error, released go-microvm's
	// words, which callers match.
	OpParse = "parse state file"
)

// Errors that package state re-exports; see there.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("state file exceeds size cap")
	ErrLocked     = errors.New("lock is held by another holder")
)
