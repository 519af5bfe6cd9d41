// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"os"

	"github.com/stacklok/go-microvm/internal/datadir"
)

// heldLock is a held state lock: its descriptor.
type heldLock = int

// tryLockPath takes a writer's state lock at path without waiting;
// afterLock is a test's hook, else nil (see Manager).
func tryLockPath(path string, afterLock func(string)) (heldLock, error) {
	return datadir.TryLockPath(path, afterLock)
}

func unlockHeld(fd heldLock) error { return datadir.ReleaseFd(fd) }

// readPath is ReadFile.
func readPath(path string) (*State, error) {
	var s *State
	_, err := datadir.ReadPath(path, func(data []byte) (err error) {
		s, err = Parse(data)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// syncDir flushes a directory's entries, making a rename or unlink in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}
