// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !unix || aix

package state

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/gofrs/flock"

	"github.com/stacklok/go-microvm/internal/datadir"
)

// Without Unix descriptors the state lock is gofrs/flock's, as released,
// without the inode check; reads check the file type by path first.
type heldLock = *flock.Flock

// tryLockPath takes a writer's state lock at path without waiting, creating
// the file; afterLock is ignored here (its tests are Unix only).
func tryLockPath(path string, _ func(string)) (heldLock, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "lock", Path: path, Err: fmt.Errorf("%w: %s", ErrNotRegular, fi.Mode().Type())}
	}
	fl := flock.New(path)
	ok, err := fl.TryLock()
	if err != nil {
		return nil, &fs.PathError{Op: "lock", Path: path, Err: err}
	}
	if !ok {
		return nil, &fs.PathError{Op: "lock", Path: path, Err: ErrLocked}
	}
	return fl, nil
}

func unlockHeld(fl heldLock) error {
	if fl == nil {
		return nil
	}
	return errors.Join(fl.Unlock(), fl.Close())
}

// ReadFile reads and parses the state file at path, with Unix's errors; it
// looks at the type first, so it never opens a symlink or FIFO.
func ReadFile(path string) (*State, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read state", Path: path, Err: fmt.Errorf("%w: %s", ErrNotRegular, fi.Mode().Type())}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	s, err := Parse(data)
	if err != nil {
		return nil, &fs.PathError{Op: datadir.OpParse, Path: path, Err: err}
	}
	return s, nil
}

// syncDir does nothing: Windows refuses a directory handle, and released
// go-microvm never flushed one.
func syncDir(string) error { return nil }

// Without directory descriptors or flock, the lease API builds and every
// call fails with an *fs.PathError matching errors.ErrUnsupported.

// Lease is the run lease, which this platform cannot take.
type Lease struct{}

func TryLease(dataDir string) (*Lease, error) { return nil, unsupported("lease", dataDir) }

func ProbeLease(dataDir string) (held bool, err error) {
	return false, unsupported("probe lock", dataDir)
}

func (l *Lease) Keep(dataDir string) error { return unsupported("keep lease", dataDir) }

func Kept(string) *Lease        { return nil }
func (l *Lease) File() *os.File { return nil }
func (l *Lease) Close() error   { return nil }

func unsupported(op, path string) error {
	return &fs.PathError{Op: op, Path: path, Err: errors.ErrUnsupported}
}
