// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// startReleasedRunner starts the stand-in runner without a claim, as
// released go-microvm does, with env added, and returns its handle and
// what the kernel says about it once it is ready.
func startReleasedRunner(t *testing.T, env ...string) (*Process, procinfo.Info) {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	p, err := SpawnProcess(testCtx(t), Config{RootPath: t.TempDir(), RunnerPath: standinPath,
		Env: append([]string{"STANDIN_READY=" + ready}, env...)})
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, p.PID())
	t.Cleanup(func() { _ = p.Stop(testCtx(t)) })
	readReady(t, ready)
	info, err := procinfo.Lookup(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	return p, info
}

// TestClaimAgreesWithCollector: NewClaim takes a directory over only where
// a collector would not keep it; for released records of a live runner,
// whatever the wall clock says, and for a PID that names another process.
func TestClaimAgreesWithCollector(t *testing.T) {
	t.Parallel()
	_, runner := startReleasedRunner(t)
	other := startOther(t)
	bootTime, err := procinfo.BootTime()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		pid  int
		// recorded is pid_start_time.
		recorded time.Time
		// inUse: the collector keeps it, and NewClaim refuses.
		inUse bool
	}{
		{"runner, clock 5 minutes behind", runner.PID, runner.Started.Add(-5 * time.Minute), true},
		{"runner, clock 5 minutes ahead", runner.PID, runner.Started.Add(5 * time.Minute), true},
		{"runner, recorded before this boot", runner.PID, bootTime.Add(-time.Hour), true},
		{"runner, no pid_start_time", runner.PID, time.Time{}, true},
		{"another process, recorded before it started", other.PID, other.Started.Add(-5 * time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "vm")
			writeState(t, dir, func(st *state.State) { st.Active, st.PID, st.PIDStartTime = true, tt.pid, tt.recorded })
			c := candidate(t, root, dir)
			kept := c.Class == gc.ClassLive || c.Class == gc.ClassUnknown
			if kept != tt.inUse {
				t.Fatalf("collector: %s (%s: %s); want kept %v", c.Class, c.Reason, c.Detail, tt.inUse)
			}
			_, aerr := Attach(dir)
			claim, err := newClaimWithGuard(t, dir, WithoutCollect())
			if !tt.inUse {
				if err != nil {
					t.Fatalf("NewClaim over a record the collector calls %s (%s): %v", c.Class, c.Reason, err)
				}
				_ = claim.Abort()
				if !errors.Is(aerr, ErrNotRunning) {
					t.Errorf("Attach: %v, want ErrNotRunning", aerr)
				}
				return
			}
			if !errors.Is(err, ErrInUse) {
				t.Fatalf("NewClaim over a directory the collector keeps as %s (%s): %v, want ErrInUse", c.Class, c.Reason, err)
			}
			if errors.Is(aerr, ErrNotRunning) {
				t.Errorf("Attach calls a runner the collector keeps not running: %v", aerr)
			}
			if st := loadState(t, dir); !st.Active || st.PID != tt.pid || st.Leased {
				t.Errorf("refused claim changed the state: %+v", st)
			}
		})
	}
	if exited(runner.PID) {
		t.Fatal("the runner died")
	}
}

// TestExitedLeaderRunner: a runner whose main thread exited while another
// thread runs is alive for a handle, for Attach and for NewClaim; a Stop
// through an attached handle stops it.
func TestExitedLeaderRunner(t *testing.T) {
	t.Parallel()
	p, info := startReleasedRunner(t, "STANDIN_EXIT_LEADER=1")
	waitFor(t, "the runner's leader to show as a zombie", func() bool {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
		if err != nil {
			t.Fatal(err)
		}
		st, err := procinfo.ParseStat(data)
		return err == nil && st.State == 'Z'
	})
	if !p.IsAlive() {
		t.Fatal("IsAlive of a runner whose threads run = false")
	}
	dir := filepath.Join(t.TempDir(), "vm")
	writeState(t, dir, func(st *state.State) {
		st.Active, st.PID, st.PIDStartTime = true, info.PID, info.Started.Add(100*time.Millisecond)
	})
	if _, err := newClaimWithGuard(t, dir, WithoutCollect()); !errors.Is(err, ErrInUse) {
		t.Fatalf("NewClaim over the live runner: %v, want ErrInUse", err)
	}
	a, err := Attach(dir)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if !a.IsAlive() {
		t.Fatal("attached handle: IsAlive = false")
	}
	if err := stopWithGuard(t, a); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitFor(t, "the runner to be reaped", func() bool { return reaped(p.PID()) })
	if st := loadState(t, dir); st.Active || st.PID != 0 {
		t.Errorf("state after Stop: %+v", st)
	}
}

// TestAttachRefusesOtherProcessSteppedClock: a released record whose
// pid_start_time is later than the start of the process now at its PID
// (the clock was stepped back after the record, and the PID reused) is
// kept by a collector, but is not a runner to signal: the process there
// runs another executable. Attach refuses it, and the process survives.
func TestAttachRefusesOtherProcessSteppedClock(t *testing.T) {
	t.Parallel()
	other := startOther(t)
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	writeState(t, dir, func(st *state.State) {
		st.Active, st.PID, st.PIDStartTime = true, other.PID, other.Started.Add(5*time.Minute)
	})
	if c := candidate(t, root, dir); c.Class != gc.ClassLive && c.Class != gc.ClassUnknown {
		t.Fatalf("collector: %s (%s: %s); want it kept", c.Class, c.Reason, c.Detail)
	}
	p, err := Attach(dir, WithStopTimeout(50*time.Millisecond))
	if err == nil {
		serr := stopWithGuard(t, p)
		t.Fatalf("Attach to a sleep at the recorded PID succeeded; Stop: %v; sleep killed: %v", serr, exited(other.PID))
	}
	if errors.Is(err, ErrNotRunning) {
		t.Errorf("Attach: %v; the collector keeps it, so it is not ErrNotRunning", err)
	}
	if _, err := newClaimWithGuard(t, dir, WithoutCollect()); !errors.Is(err, ErrInUse) {
		t.Errorf("NewClaim: %v, want ErrInUse", err)
	}
	if now, err := procinfo.Lookup(other.PID); err != nil || now.StartTime != other.StartTime {
		t.Fatalf("the unrelated process was hit: %+v, %v", now, err)
	}
}

// startOther starts a process that is not a runner (sleep), killed when
// the test ends, and returns its identity.
func startOther(t *testing.T) procinfo.Info {
	t.Helper()
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	other, err := procinfo.Lookup(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return other
}

// TestRunnerStartedThroughSymlink: a released record, without a start
// time, of a runner exec'd through a symlink to a versioned file is kept
// by collectors (its names disagree), so NewClaim refuses it and Attach
// neither calls it gone nor attaches to signal it.
func TestRunnerStartedThroughSymlink(t *testing.T) {
	t.Parallel()
	ready := filepath.Join(t.TempDir(), "ready")
	p, err := SpawnProcess(testCtx(t), Config{RootPath: t.TempDir(), RunnerPath: testproc.VersionedRunner(t, t.TempDir()),
		Env: []string{"STANDIN_READY=" + ready}})
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, p.PID())
	t.Cleanup(func() { _ = p.Stop(testCtx(t)) })
	readReady(t, ready)
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	writeState(t, dir, func(st *state.State) { st.Active, st.PID = true, p.PID() })
	if c := candidate(t, root, dir); c.Class != gc.ClassLive || c.Reason != gc.ReasonRunnerAmbiguous {
		t.Fatalf("collector: %s (%s: %s); want live (runner-ambiguous)", c.Class, c.Reason, c.Detail)
	}
	if a, err := Attach(dir, WithStopTimeout(50*time.Millisecond)); err == nil || errors.Is(err, ErrNotRunning) {
		if err == nil {
			err = stopWithGuard(t, a)
		}
		t.Fatalf("Attach: %v; want it refused as not confirmed", err)
	}
	if _, err := newClaimWithGuard(t, dir, WithoutCollect()); !errors.Is(err, ErrInUse) {
		t.Errorf("NewClaim: %v, want ErrInUse", err)
	}
	if exited(p.PID()) {
		t.Fatal("the runner died")
	}
}
