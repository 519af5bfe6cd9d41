// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// A fresh process attaches to a runner started by an embedder that has
// exited, and stops it.
func TestAttachFromFreshProcessStops(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vm")
	ready := filepath.Join(t.TempDir(), "ready")
	h := startHelper(t, "spawn", "DATA_DIR="+dir, "RUNNER="+standinPath, "STANDIN_READY="+ready, "HELPER_EXIT=1")
	h.wait(t)
	runnerPID := readReady(t, ready)[0]
	killOnCleanup(t, runnerPID)
	if exited(runnerPID) {
		t.Fatal("runner died with its embedder")
	}

	stopper := startHelper(t, "attach-stop", "DATA_DIR="+dir)
	stopper.wait(t)
	if stopper.pid != runnerPID {
		t.Fatalf("attached to pid %d, runner is %d", stopper.pid, runnerPID)
	}
	waitFor(t, "the runner to exit", func() bool { return exited(runnerPID) })
	waitFor(t, "the lease to be free", func() bool { return !leaseHeld(t, dir) })
	if st := loadState(t, dir); st.Active || st.Leased || st.PID != 0 {
		t.Fatalf("state after the attached Stop: %+v", st)
	}
	if _, err := Attach(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Attach after Stop: %v, want ErrNotRunning", err)
	}
}

// Attach applies the identity rules, strongest evidence first, to a record
// naming a live process that is not a runner (a sleep), a live stand-in
// runner, a zombie, and no process at all.
func TestAttachIdentity(t *testing.T) {
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	sleepInfo, err := procinfo.Lookup(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}

	rootfs := t.TempDir()
	released, err := SpawnProcess(testCtx(t), Config{RootPath: rootfs, RunnerPath: standinPath})
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, released.PID())
	t.Cleanup(func() { _ = released.Stop(testCtx(t)) })

	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a zombie", func() bool {
		info, err := procinfo.Lookup(zombie.Process.Pid)
		return err == nil && info.Zombie
	})
	zombieInfo, _ := procinfo.Lookup(zombie.Process.Pid)
	t.Cleanup(func() { _ = zombie.Wait() })

	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}

	boot, err := procinfo.BootID()
	if err != nil {
		t.Fatal(err)
	}
	bootTime, err := procinfo.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	exact := func(pid int, start uint64, boot string) func(*state.State) {
		return func(st *state.State) {
			st.Active, st.PID = true, pid
			st.Runner = &state.Identity{StartTime: start, BootID: boot}
		}
	}
	tests := []struct {
		name   string
		record func(*state.State)
		ok     bool
	}{
		{"exact identity, even of another executable", exact(sleepInfo.PID, sleepInfo.StartTime, boot), true},
		{"start time differs", exact(sleepInfo.PID, sleepInfo.StartTime+1, boot), false},
		{"boot differs", exact(sleepInfo.PID, sleepInfo.StartTime, "another-boot"), false},
		{"zombie", exact(zombieInfo.PID, zombieInfo.StartTime, boot), false},
		{"no such process", exact(gone.Process.Pid, 1, boot), false},
		{"inactive", func(st *state.State) { st.PID = sleepInfo.PID }, false},
		{"active without pid", func(st *state.State) { st.Active = true }, false},
		{"pid_start_time after the process started", func(st *state.State) {
			st.Active, st.PID, st.PIDStartTime = true, sleepInfo.PID, sleepInfo.Started.Add(100*time.Millisecond)
		}, true},
		{"pid_start_time long before the process started", func(st *state.State) {
			st.Active, st.PID, st.PIDStartTime = true, sleepInfo.PID, sleepInfo.Started.Add(-time.Minute)
		}, false},
		{"pid_start_time before this boot", func(st *state.State) {
			st.Active, st.PID, st.PIDStartTime = true, sleepInfo.PID, bootTime.Add(-time.Hour)
		}, false},
		{"released record, not a runner", func(st *state.State) { st.Active, st.PID = true, sleepInfo.PID }, false},
		{"released record, a runner", func(st *state.State) { st.Active, st.PID = true, released.PID() }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeState(t, dir, tt.record)
			p, err := Attach(dir)
			if tt.ok {
				if err != nil {
					t.Fatalf("Attach: %v", err)
				}
				if p.DataDir() != dir || p.PID() != loadState(t, dir).PID {
					t.Fatalf("Attach: pid %d dir %s", p.PID(), p.DataDir())
				}
				return
			}
			if !errors.Is(err, ErrNotRunning) {
				t.Fatalf("Attach: %v, want ErrNotRunning", err)
			}
		})
	}
}
