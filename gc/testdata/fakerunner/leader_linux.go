// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
)

// init keeps main on the main thread (the thread-group leader) when that
// thread is to exit.
func init() {
	if os.Getenv("FAKERUNNER_EXIT_LEADER") == "1" {
		runtime.LockOSThread()
	}
}

// exitLeader ends the calling thread alone, as pthread_exit does. The Go
// runtime believes that thread still runs, so nothing may stop the world
// afterwards: the garbage collector is turned off first.
func exitLeader() {
	debug.SetGCPercent(-1)
	for {
		syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
	}
}
