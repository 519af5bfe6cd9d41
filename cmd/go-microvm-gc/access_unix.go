// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package main

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/gc"
)

// lockAccess says why this user could not take root's lock, nil when it
// could: the collector opens its user's root lock (gc.LockName) for reading,
// creating it when missing.
func lockAccess(root string) error {
	lock := filepath.Join(root, gc.LockName())
	if _, err := os.Lstat(lock); err == nil {
		if err := unix.Access(lock, unix.R_OK); err != nil {
			return &os.PathError{Op: "open", Path: lock, Err: err}
		}
		return nil
	}
	if err := unix.Access(root, unix.W_OK|unix.X_OK); err != nil {
		return &os.PathError{Op: "create lock in", Path: root, Err: err}
	}
	return nil
}
