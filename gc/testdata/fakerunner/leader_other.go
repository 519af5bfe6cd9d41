// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package main

import "time"

// exitLeader blocks: only Linux lets the thread-group leader exit alone.
func exitLeader() {
	for {
		time.Sleep(time.Hour)
	}
}
