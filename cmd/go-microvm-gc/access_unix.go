// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/gc"
)

// openNoWait opens a file that may not be what its name promises without
// following a symlink, waiting for a FIFO's writer or taking a terminal.
const openNoWait = unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY

// lockAccess says why this user could not take root's lock, nil when it
// could: the collector opens its user's root lock (gc.LockName) for reading,
// creating it when missing, and refuses one that is not this user's alone.
func lockAccess(root string) error {
	lock := filepath.Join(root, gc.LockName())
	var st unix.Stat_t
	if err := unix.Lstat(lock, &st); err == nil {
		if int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 {
			return &os.PathError{Op: "use", Path: lock, Err: fmt.Errorf("not this user's alone: owner uid %d, mode %#o", st.Uid, st.Mode&0o7777)}
		}
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
