// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package datadir reaches a go-microvm data directory through an open
// directory descriptor: it reads the state file, probes and takes the run
// lease and the state lock relative to that descriptor, and resolves no
// path again. Package state builds its path-based API on it (with
// AT_FDCWD and a full path), and gc's walk uses it on the descriptors it
// already holds, so each rule has one implementation.
//
// It knows the state file's bytes, not its schema: a caller passes the
// parser (state.Parse). Its sentinel errors are the ones package state
// exports under the same names.
package datadir

import "errors"

// File names inside a data directory, as released go-microvm uses them.
const (
	// FileName is the state file.
	FileName = "go-microvm-state.json"
	// LockFileName is the state lock: an empty file flocked by writers.
	LockFileName = "go-microvm-state.lock"
	// MaxFileSize caps how much of a state file is ever read.
	MaxFileSize = 64 << 10
	// OpParse is the Op of the error for a file that is not a state file.
	// It keeps the words of released go-microvm's error, which callers
	// match.
	OpParse = "parse state file"
)

// Errors that package state re-exports; see there.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("state file exceeds size cap")
	ErrLocked     = errors.New("lock is held by another holder")
)
