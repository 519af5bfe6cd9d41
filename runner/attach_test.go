// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// A fresh process attaches to a runner started by an embedder that has
// exited, and stops it.
func TestAttachFromFreshProcessStops(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	releasedInfo, err := procinfo.Lookup(released.PID())
	if err != nil {
		t.Fatal(err)
	}

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
			st.Active, st.PID, st.PIDStartTime = true, releasedInfo.PID, releasedInfo.Started.Add(100*time.Millisecond)
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

// An embedder SIGKILLed between starting the runner and recording it
// leaves a live runner with the run marker set and no pid: collectors keep
// it, a fresh process recovers it by its lease and stops it (with its
// child, which shares the lease but leads no session), and the stopped
// directory can then be reclaimed.
func TestAttachRecoversUnrecordedRunner(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	ready := filepath.Join(t.TempDir(), "ready")
	h := startHelper(t, "spawn-unrecorded", "DATA_DIR="+dir, "RUNNER="+standinPath,
		"STANDIN_READY="+ready, "STANDIN_CHILD=1")
	pids := readReady(t, ready)
	for _, pid := range pids {
		killOnCleanup(t, pid)
	}
	if len(pids) != 2 || pids[0] != h.pid {
		t.Fatalf("stand-in pids %v, embedder started %d", pids, h.pid)
	}
	h.kill(t)

	if st := loadState(t, dir); !st.Leased || st.PID != 0 || st.Runner != nil {
		t.Fatalf("state of an unrecorded runner: %+v", st)
	}
	if c := candidate(t, root, dir); c.Class != gc.ClassLive {
		t.Fatalf("scan with the unrecorded runner alive: %s (%s) %s", c.Class, c.Reason, c.Detail)
	}
	before := snapshot(t, root)
	rep, err := gc.Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Reclaimed) != 0 {
		t.Fatalf("collected a live VM: %+v", rep.Reclaimed)
	}
	if after := snapshot(t, root); !maps.Equal(before, after) {
		t.Fatalf("collection changed a live VM:\nbefore %v\nafter  %v", before, after)
	}

	stopper := startHelper(t, "attach-stop", "DATA_DIR="+dir)
	stopper.wait(t)
	if stopper.pid != pids[0] {
		t.Fatalf("attached to pid %d, runner is %d", stopper.pid, pids[0])
	}
	for _, pid := range pids {
		waitFor(t, fmt.Sprintf("pid %d to exit", pid), func() bool { return exited(pid) })
	}
	waitFor(t, "the lease to be free", func() bool { return !leaseHeld(t, dir) })
	if st := loadState(t, dir); st.Active || st.Leased || st.PID != 0 {
		t.Fatalf("state after the recovered Stop: %+v", st)
	}
	// A clean stop leaves a stopped VM, reclaimable on request.
	rep, err = gc.Collect(root, gc.WithStopped(0))
	if err != nil {
		t.Fatal(err)
	}
	if !reclaimed(rep, dir) {
		t.Fatalf("stopped directory not reclaimed: %+v", rep)
	}
	if _, ok := snapshot(t, root)["vm/rootfs-work"]; ok {
		t.Fatal("rootfs-work survived the collection")
	}
}

// Attach on a run marker with no pid: a freed lease is an ended run; a
// lease held by no runner (a claim still cloning, a runner under another
// name) cannot be attached; WithRunnerPath names a renamed runner, which
// is then recovered and recorded.
func TestAttachLeasedWithoutPID(t *testing.T) {
	t.Parallel()
	renamed := filepath.Join(t.TempDir(), "my-vm-runner")
	testproc.CopyExecutable(t, standinPath, renamed)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		opts  []ClaimOption
		want  error // nil: attached
	}{
		{"lease free", func(t *testing.T, dir string) {
			writeState(t, dir, func(st *state.State) { st.Leased = true })
		}, nil, ErrNotRunning},
		{"claim still cloning", func(t *testing.T, dir string) {
			startHelper(t, "clone", "DATA_DIR="+dir)
		}, nil, ErrUnattachable},
		{"runner under another name", func(t *testing.T, dir string) {
			startUnrecorded(t, dir, renamed)
		}, nil, ErrUnattachable},
		{"runner under another name, named by WithRunnerPath", func(t *testing.T, dir string) {
			startUnrecorded(t, dir, renamed)
		}, []ClaimOption{WithRunnerPath(renamed)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vm")
			tt.setup(t, dir)
			p, err := Attach(dir, tt.opts...)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("Attach: %v, want %v", err, tt.want)
				}
				if st := loadState(t, dir); st.PID != 0 {
					t.Fatalf("failed Attach recorded pid %d", st.PID)
				}
				return
			}
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			info, err := procinfo.Lookup(p.PID())
			if err != nil {
				t.Fatal(err)
			}
			st := loadState(t, dir)
			if !st.Active || !st.Leased || st.PID != p.PID() || st.Runner == nil ||
				st.Runner.StartTime != info.StartTime || st.Runner.Executable != info.Executable || st.PIDStartTime.IsZero() {
				t.Fatalf("recovered record: %+v runner %+v", st, st.Runner)
			}
			if again, err := Attach(dir); err != nil || again.PID() != p.PID() {
				t.Fatalf("Attach of the recorded runner: pid %v, %v", again, err)
			}
			if err := stopWithGuard(t, p); err != nil {
				t.Fatal(err)
			}
			if !exited(info.PID) {
				t.Fatal("runner still running after Stop")
			}
		})
	}
}

// startUnrecorded leaves in dir a live runner started from exe whose
// embedder was SIGKILLed before recording it.
func startUnrecorded(t *testing.T, dir, exe string) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	h := startHelper(t, "spawn-unrecorded", "DATA_DIR="+dir, "RUNNER="+exe, "STANDIN_READY="+ready)
	killOnCleanup(t, h.pid)
	readReady(t, ready)
	h.kill(t)
}
