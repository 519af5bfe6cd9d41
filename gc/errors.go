// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"io/fs"
)

// Errors callers branch on, returned wrapped; test with errors.Is.
var (
	// ErrBusy: another collector of this user holds the root lock. Not a
	// failure of the caller.
	ErrBusy = errors.New("another collector holds the root lock")
	// ErrNotWritable: a directory the collector must change is neither
	// writable by it nor its own; it is kept, until its owner collects it.
	ErrNotWritable = errors.New("not writable by this user")
)

// pathError is the *fs.PathError for the failure err of op on path. An
// *fs.PathError about path already carries the syscall's more precise Op.
func pathError(op, path string, err error) *fs.PathError {
	if pe, ok := err.(*fs.PathError); ok && pe.Path == path {
		return pe
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}
