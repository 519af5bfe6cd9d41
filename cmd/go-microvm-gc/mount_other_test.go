// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package main

import "github.com/rogpeppe/go-internal/testscript"

// canMount is the [mountable] condition: mounting a tmpfs in a test is
// Linux-only.
func canMount() bool { return false }

// cmdMount fails: scripts guard it with [mountable].
func cmdMount(ts *testscript.TestScript, neg bool, args []string) {
	ts.Fatalf("mount is Linux-only; guard it with [mountable]")
}
