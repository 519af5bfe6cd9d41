// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !unix || aix

package state

import (
	"context"
	"errors"
	"io/fs"
	"os"
)

// Without directory descriptors or flock the lease API is kept so that
// embedders build, and every call fails with errors.ErrUnsupported.

// Lease is the run lease, which this platform cannot take.
type Lease struct{}

// AcquireLease fails here with an *fs.PathError matching
// errors.ErrUnsupported.
func AcquireLease(_ context.Context, dataDir string) (*Lease, error) {
	return nil, unsupported("lease", dataDir)
}

// TryLease fails here with an *fs.PathError matching
// errors.ErrUnsupported.
func TryLease(dataDir string) (*Lease, error) { return nil, unsupported("lease", dataDir) }

// ProbeLease fails here with an *fs.PathError matching
// errors.ErrUnsupported.
func ProbeLease(dataDir string) (held bool, err error) {
	return false, unsupported("probe lock", dataDir)
}

// Keep fails here with an *fs.PathError matching errors.ErrUnsupported.
func (l *Lease) Keep(dataDir string) error { return unsupported("keep lease", dataDir) }

// Kept returns nil: no Lease is ever made here.
func Kept(string) *Lease { return nil }

// File returns nil: no Lease is ever made here.
func (l *Lease) File() *os.File { return nil }

// Close does nothing: no Lease is ever made here.
func (l *Lease) Close() error { return nil }

func unsupported(op, path string) error {
	return &fs.PathError{Op: op, Path: path, Err: errors.ErrUnsupported}
}
