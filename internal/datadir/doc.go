// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package datadir reads the state file and takes or probes the run lease
// and the state lock relative to an open data directory descriptor (or
// AT_FDCWD), resolving no path again, for package state and gc alike. It
// knows the state file's bytes, not its schema: callers pass state.Parse.
package datadir

import "errors"

// Names, limits and errors package state re-exports; see there.
const (
	FileName     = "go-microvm-state.json"
	LockFileName = "go-microvm-state.lock"
	MaxFileSize  = 64 << 10
	OpParse      = "parse state file" // released go-microvm's Op, which callers match
)

var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("state file exceeds size cap")
	ErrLocked     = errors.New("lock is held by another holder")
	// ErrReplaced: Lock found the file replaced on every attempt.
	ErrReplaced = errors.New("file replaced on every attempt")
)
