// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package testproc

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nsScript is the init of RunnerInPIDNamespace's namespace: it starts the
// runner $1 with the config $4 and the ready file $3 as PID $2 of the
// namespace, and waits.
const nsScript = `echo $(($2 - 1)) >/proc/sys/kernel/ns_last_pid || exit 3
STANDIN_READY=$3 "$1" "$4" &
wait`

// RunnerInPIDNamespace starts the stand-in runner on root (a fresh
// directory when "") in a new PID namespace, as an embedder in a
// container would (the namespace's init is a shell, the runner its
// child), with pid as the PID the namespace gives it. It returns once the
// runner is ready, with a function that kills the namespace (its init, so
// the kernel kills the rest) and returns once every process of it is
// gone; the test's end does the same. It skips the test where a PID
// namespace cannot be made (not root).
func RunnerInPIDNamespace(t testing.TB, pid int, root string) (stop func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a PID namespace")
	}
	runner, err := BuildRunner()
	if err != nil {
		t.Fatal(err)
	}
	return RunnerAsInPIDNamespace(t, runner, pid, root)
}

// RunnerAsInPIDNamespace is RunnerInPIDNamespace with the stand-in runner
// (or a copy of it under another name) at the path runner.
func RunnerAsInPIDNamespace(t testing.TB, runner string, pid int, root string) (stop func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a PID namespace")
	}
	if root == "" {
		root = t.TempDir()
	}
	cfg, err := json.Marshal(map[string]string{"root_path": root})
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command("/bin/sh", "-c", nsScript, "sh", runner, strconv.Itoa(pid), ready, string(cfg))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot make a PID namespace: %v", err)
	}
	stop = func() {
		if cmd.ProcessState == nil {
			// The init's exit waits until the kernel has killed and
			// reaped every other process of its namespace.
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	for deadline := time.Now().Add(Guard); ; time.Sleep(10 * time.Millisecond) {
		data, err := os.ReadFile(ready)
		if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
			if f[0] != strconv.Itoa(pid) {
				t.Fatalf("runner in the PID namespace has pid %s, want %d", f[0], pid)
			}
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("runner in a PID namespace not ready after %s", Guard)
		}
	}
}

// FreePID returns a PID that no process of this PID namespace has now,
// for a process in another namespace to take. It starts its search at a
// random PID, so that tests running at the same time (in other packages'
// test binaries too) seldom pick the same one.
func FreePID(t testing.TB) int {
	t.Helper()
	const lo, n = 1000, 30000
	start := rand.IntN(n)
	for i := range n {
		if pid := lo + (start+i)%n; syscall.Kill(pid, 0) == syscall.ESRCH {
			return pid
		}
	}
	t.Fatal("no free pid")
	return 0
}
