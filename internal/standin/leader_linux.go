// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package standin

import (
	"os"
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// init keeps the main goroutine on the main thread, the thread-group
// leader, when that thread is to exit: an init function that locks the
// thread makes main run on it.
func init() {
	if os.Getenv(EnvExitLeader) == "1" {
		runtime.LockOSThread()
	}
}

// exitLeader ends the calling thread alone (exit(2), not exit_group(2)),
// as pthread_exit does. The Go runtime believes that thread still runs,
// so nothing may stop the world afterwards: the garbage collector is
// turned off first.
func exitLeader() {
	debug.SetGCPercent(-1)
	for {
		// exit does not return, so there is no error to look at.
		_, _, _ = unix.RawSyscall(unix.SYS_EXIT, 0, 0, 0)
	}
}
