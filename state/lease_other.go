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

// Without directory descriptors or flock, the lease API builds and every
// call fails with an *fs.PathError matching errors.ErrUnsupported.

// Lease is the run lease, which this platform cannot take.
type Lease struct{}

func AcquireLease(_ context.Context, dataDir string) (*Lease, error) {
	return nil, unsupported("lease", dataDir)
}

func TryLease(dataDir string) (*Lease, error) { return nil, unsupported("lease", dataDir) }

func ProbeLease(dataDir string) (held bool, err error) {
	return false, unsupported("probe lock", dataDir)
}

func (l *Lease) Keep(dataDir string) error { return unsupported("keep lease", dataDir) }

// Kept, File and Close have no Lease to act on here.
func Kept(string) *Lease        { return nil }
func (l *Lease) File() *os.File { return nil }
func (l *Lease) Close() error   { return nil }

func unsupported(op, path string) error {
	return &fs.PathError{Op: op, Path: path, Err: errors.ErrUnsupported}
}
