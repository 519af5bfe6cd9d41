// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package gc

// lockTable is empty where the kernel publishes no table of file locks:
// every directory is probed.
type lockTable map[struct{}]struct{}

func readLockTable(string) lockTable { return nil }

func (lockTable) held(dev, ino uint64) bool { return false }
