// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/state"
)

// flockFree runs util-linux's `flock -n dir true`: whether another
// process could take the run lease on dir right now.
func flockFree(t *testing.T, dir string) bool {
	t.Helper()
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock (util-linux) not installed")
	}
	err := exec.Command("flock", "-n", dir, "true").Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false
	}
	if err != nil {
		t.Fatalf("flock -n %s: %v", dir, err)
	}
	return true
}

// A runner that SpawnProcess starts for a directory claimed with
// gc.WithCreating (as released microvm.Run starts it) inherits the run
// lease and is recorded with its exact identity beside the run marker;
// the directory is kept while the runner or its creator lives, whichever
// dies first, and reclaimed once both are gone.
func TestReleasedSpawnCreatorAndRunner(t *testing.T) {
	t.Parallel()
	for _, creatorFirst := range []bool{true, false} {
		name := "runner killed first"
		if creatorFirst {
			name = "creator killed first"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := filepath.Join(root, "vm")
			h := startHelper(t, "released-spawn", "ROOT="+root, "DATA_DIR="+dir, "RUNNER="+standinPath)
			runnerPID := h.pid
			killOnCleanup(t, runnerPID)
			st := loadState(t, dir)
			if !st.Active || !st.Leased || st.PID != runnerPID || st.Runner == nil || st.Runner.StartTime == 0 || st.Runner.Executable == "" {
				t.Fatalf("state after released Run's save: %+v (runner %+v), want the marker and the runner's identity", st, st.Runner)
			}
			if flockFree(t, dir) {
				t.Fatal("flock -n took the run lease of a live VM")
			}
			first, second := runnerPID, h.Pid()
			if creatorFirst {
				first, second = second, first
			}
			if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the first to be reaped", func() bool { return exited(first) })
			if flockFree(t, dir) {
				t.Fatal("run lease free while the runner or its creator lives")
			}
			if c := candidate(t, root, dir); c.Class != gc.ClassLive {
				t.Fatalf("with one of runner and creator alive: %s (%s) %s", c.Class, c.Reason, c.Detail)
			}
			if err := syscall.Kill(second, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the lease to be free", func() bool { return flockFree(t, dir) })
			rep, err := gc.Collect(root)
			if err != nil {
				t.Fatal(err)
			}
			if !reclaimed(rep, dir) {
				t.Fatalf("directory not reclaimed with runner and creator dead: %+v", rep)
			}
		})
	}
}

// In the creating process, SpawnProcess hands the kept lease to the
// runner; Close lets go of the creator's copy (the runner's holds the
// lease on its own), and Stop records a clean stop and frees the lease.
func TestReleasedSpawnLetGo(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	p := createReleased(t, root, dir, dir)
	if p.DataDir() != dir {
		t.Fatalf("DataDir %q, want %q", p.DataDir(), dir)
	}
	// A second creation over the running VM is refused, and this process
	// keeps protecting the VM.
	if err := gc.BeforeCreate(root, gc.WithCreating(dir))(testCtx(t)); err == nil {
		t.Fatal("a second creation claimed the directory of a running VM")
	}
	if state.Kept(dir) == nil {
		t.Fatal("a refused creation let go of the running VM's lease")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if state.Kept(dir) != nil {
		t.Fatal("Close left the lease kept")
	}
	if flockFree(t, dir) {
		t.Fatal("the runner does not hold the run lease")
	}
	if err := stopWithGuard(t, p); err != nil {
		t.Fatal(err)
	}
	if st := loadState(t, dir); st.Active || st.Leased || st.PID != 0 {
		t.Fatalf("state after Stop: %+v", st)
	}
	if !leaseFreed(t, dir) {
		t.Fatal("lease held after Stop")
	}
}

// The runner inherits the lease when the data directory was claimed under
// another spelling of its path (here through a symlink to its root).
func TestReleasedSpawnOtherSpelling(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	p := createReleased(t, root, filepath.Join(link, "vm"), dir)
	if st := loadState(t, dir); !st.Leased || st.PID != p.PID() || st.Runner == nil {
		t.Fatalf("state after the spawn: %+v, want the runner recorded beside the marker", st)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if flockFree(t, dir) {
		t.Fatal("the runner does not hold the run lease")
	}
	if err := stopWithGuard(t, p); err != nil {
		t.Fatal(err)
	}
}

// createReleased creates a VM in dir the way released microvm.Run does:
// the pre-creation check claims creating (dir, perhaps spelled another
// way), the rootfs is cloned, and DefaultSpawner's SpawnProcess starts the
// runner, killed when the test ends.
func createReleased(t *testing.T, root, creating, dir string) *Process {
	t.Helper()
	if err := gc.BeforeCreate(root, gc.WithCreating(creating))(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := makeRootfs(dir); err != nil {
		t.Fatal(err)
	}
	p, err := SpawnProcess(testCtx(t), Config{RootPath: filepath.Join(dir, "rootfs-work"), RunnerPath: standinPath,
		VMLogPath: filepath.Join(dir, "vm.log")})
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, p.PID())
	return p
}
