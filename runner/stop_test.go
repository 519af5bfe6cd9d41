// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// spawnClaimed claims dir, clones and spawns the stand-in with extra env,
// and returns the process and the pids from the stand-in's ready file.
func spawnClaimed(t *testing.T, dir string, env []string, opts ...ClaimOption) (*Process, []int) {
	t.Helper()
	ctx := testCtx(t)
	c, err := NewClaim(ctx, dir, append([]ClaimOption{WithoutCollect()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Abort() })
	if err := makeRootfs(dir); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	cfg := Config{
		RootPath:   filepath.Join(dir, "rootfs-work"),
		NumVCPUs:   2,
		RAMMiB:     512,
		RunnerPath: standinPath,
		Env:        append([]string{"STANDIN_READY=" + ready}, env...),
	}
	p, err := c.Spawn(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, p.PID())
	pids := readReady(t, ready)
	for _, pid := range pids[1:] {
		killOnCleanup(t, pid)
	}
	return p, pids
}

// stopWithGuard runs Stop, failing if it hangs.
func stopWithGuard(t *testing.T, p *Process) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Stop(context.Background()) }()
	select {
	case err := <-done:
		return err
	case <-time.After(guard):
		t.Fatal("Stop hung")
		return nil
	}
}

// Stop ends the runner and its child, escalating to SIGKILL when SIGTERM
// is ignored, then records a clean stop; a second Stop is a no-op.
func TestStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
	}{
		{"honours SIGTERM", []string{"STANDIN_CHILD=1"}},
		{"ignores SIGTERM", []string{"STANDIN_CHILD=1", "STANDIN_IGNORE_TERM=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vm")
			p, pids := spawnClaimed(t, dir, tt.env, WithStopTimeout(200*time.Millisecond))
			if len(pids) != 2 || pids[0] != p.PID() {
				t.Fatalf("ready pids %v, runner %d", pids, p.PID())
			}
			if err := stopWithGuard(t, p); err != nil {
				t.Fatal(err)
			}
			if !exited(p.PID()) {
				t.Error("runner still running after Stop")
			}
			waitFor(t, "the runner's child to die with it", func() bool { return exited(pids[1]) })
			waitFor(t, "the lease to be free", func() bool { return !leaseHeld(t, dir) })
			st := loadState(t, dir)
			if st.Active || st.PID != 0 || st.Leased || st.Runner != nil {
				t.Errorf("state after Stop: %+v", st)
			}
			if p.IsAlive() {
				t.Error("IsAlive after Stop")
			}
			if err := stopWithGuard(t, p); err != nil {
				t.Errorf("second Stop: %v", err)
			}
		})
	}
}

// Stop never signals a PID that now names another process: a `sleep`
// holds the recorded PID with another start time and survives.
func TestStopRecycledPID(t *testing.T) {
	t.Parallel()
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	info, err := procinfo.Lookup(sleep.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := procinfo.BootID()
	if err != nil {
		t.Fatal(err)
	}
	recorded := info.StartTime - 100 // the runner that held the PID before
	dir := filepath.Join(t.TempDir(), "vm")
	writeState(t, dir, func(st *state.State) {
		st.Active = true
		st.PID = info.PID
		st.PIDStartTime = time.Now().Add(-time.Hour)
		st.Runner = &state.Identity{StartTime: recorded, BootID: boot, Executable: standinPath}
	})

	if _, err := Attach(dir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Attach to a recycled PID: %v, want ErrNotRunning", err)
	}
	// A handle from before the recycling: only the PID number is made up.
	p := &Process{
		pid: info.PID, startTime: recorded, dataDir: dir, mgr: state.NewManager(dir),
		logger: newOptions(nil).logger, stopTimeout: 50 * time.Millisecond, lockTimeout: guard,
	}
	if p.IsAlive() {
		t.Error("IsAlive for a recycled PID")
	}
	if err := stopWithGuard(t, p); err != nil {
		t.Fatal(err)
	}
	if now, err := procinfo.Lookup(info.PID); err != nil || now.Zombie || now.StartTime != info.StartTime {
		t.Fatalf("the unrelated process was hit: %+v, %v", now, err)
	}
	if st := loadState(t, dir); st.Active || st.PID != 0 {
		t.Errorf("state after Stop: %+v", st)
	}
}

// IsAlive follows the runner across a SIGKILL, with and without a lease,
// and with the embedder keeping its copy of the lease.
func TestIsAlive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		spawn func(t *testing.T, dir string) *Process
	}{
		{"released spawn", func(t *testing.T, dir string) *Process {
			if err := makeRootfs(dir); err != nil {
				t.Fatal(err)
			}
			p, err := SpawnProcess(testCtx(t), Config{RootPath: filepath.Join(dir, "rootfs-work"), RunnerPath: standinPath})
			if err != nil {
				t.Fatal(err)
			}
			killOnCleanup(t, p.PID())
			return p
		}},
		{"claimed", func(t *testing.T, dir string) *Process {
			p, _ := spawnClaimed(t, dir, nil)
			return p
		}},
		{"claimed, creator let go", func(t *testing.T, dir string) *Process {
			p, _ := spawnClaimed(t, dir, nil)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vm")
			p := tt.spawn(t, dir)
			if !p.IsAlive() {
				t.Fatal("IsAlive false for a running runner")
			}
			proc, err := os.FindProcess(p.PID())
			if err != nil {
				t.Fatal(err)
			}
			if err := proc.Kill(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "IsAlive to turn false", func() bool { return !p.IsAlive() })
		})
	}
}

// The directory stays live while its creator lives, even after the runner
// died; Close hands it over to the collector.
func TestKeepLease(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	p, _ := spawnClaimed(t, dir, nil)
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Reaped, not merely a zombie: a multithreaded runner's other threads
	// may still hold its descriptors while its main thread is a zombie.
	waitFor(t, "the runner to be reaped", func() bool { return reaped(p.PID()) })
	if c := candidate(t, root, dir); c.Class != gc.ClassLive {
		t.Fatalf("scan with the embedder's lease kept: %s (%s)", c.Class, c.Reason)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if !leaseFreed(t, dir) {
		t.Fatal("the lease is still held after Close")
	}
	if c := candidate(t, root, dir); c.Class != gc.ClassOrphan {
		t.Fatalf("scan after Close: %s (%s)", c.Class, c.Reason)
	}
}

// A runner that exits at once leaves a claim that reads as an ended run,
// and Stop still records a clean stop.
func TestRunnerExitsEarly(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	c, err := NewClaim(testCtx(t), dir, WithoutCollect())
	if err != nil {
		t.Fatal(err)
	}
	// No rootfs: the stand-in refuses to start.
	p, err := c.Spawn(testCtx(t), Config{RootPath: filepath.Join(dir, "rootfs-work"), RunnerPath: standinPath})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "IsAlive to turn false", func() bool { return !p.IsAlive() })
	// Its creator, this process, lives: the directory is kept.
	if c := candidate(t, root, dir); c.Class != gc.ClassLive {
		t.Fatalf("scan after the runner died: %s (%s)", c.Class, c.Reason)
	}
	if err := stopWithGuard(t, p); err != nil {
		t.Fatal(err)
	}
	if st := loadState(t, dir); st.Active || st.Leased || st.PID != 0 {
		t.Fatalf("state after Stop: %+v", st)
	}
}

// Stop holds the state lock from before the first signal until the stop
// is recorded, so a collector looping in another process meanwhile sees
// the VM live, then busy, then stopped, never an orphan: in between the
// runner's death and the clearing of the marker the lease is free, and
// Stop waits there until the collector has seen the directory busy. No
// file of rootfs-work is lost.
func TestStopExposesNoOrphanToCollector(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	// terminated is set below, before Stop, which runs the hook.
	var terminated func()
	p, _ := spawnClaimed(t, dir, []string{"STANDIN_CHILD=1"}, WithStopTimeout(guard),
		withHooks(hooks{terminated: func(string) { terminated() }}))
	// The creator's copy of the lease would keep the VM live throughout;
	// without it, only the state lock covers the window.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	rootfs := func() map[string]int64 {
		files := make(map[string]int64)
		for name, size := range snapshot(t, dir) {
			if name == "rootfs-work" || strings.HasPrefix(name, "rootfs-work/") {
				files[name] = size
			}
		}
		return files
	}
	before := rootfs()
	if len(before) < 3 {
		t.Fatalf("rootfs-work snapshot too small to prove anything: %v", before)
	}

	logPath := filepath.Join(t.TempDir(), "collector.log")
	stopPath := filepath.Join(t.TempDir(), "stop")
	collector := startHelper(t, "collect-loop", "ROOT="+root, "DATA_DIR="+dir,
		"COLLECT_LOG="+logPath, "COLLECT_STOP="+stopPath)
	seen := func() []string {
		data, _ := os.ReadFile(logPath)
		return strings.Fields(string(data))
	}
	terminated = func() {
		if !pollUntil(func() bool { return slices.Contains(seen(), string(gc.ClassBusy)) }) {
			t.Errorf("the collector never saw the stopping VM busy: %q", seen())
		}
	}
	if err := stopWithGuard(t, p); err != nil {
		t.Fatal(err)
	}
	terminated = func() {}
	if !pollUntil(func() bool { return slices.Contains(seen(), string(gc.ClassStopped)) }) {
		t.Errorf("the collector never saw the VM stopped: %q", seen())
	}
	if err := os.WriteFile(stopPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	collector.wait(t)

	log := strings.Join(seen(), " ")
	if want := "live busy stopped"; log != want {
		t.Errorf("classes the collector saw: %q, want %q", log, want)
	}
	if after := rootfs(); !maps.Equal(before, after) {
		t.Fatalf("rootfs-work changed during Stop:\nbefore %v\nafter  %v", before, after)
	}
}

// Stop of a runner whose data directory was removed meanwhile stops the
// runner and does not create the directory again.
func TestStopDirRemoved(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "vm")
	p, _ := spawnClaimed(t, dir, nil)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := stopWithGuard(t, p); err != nil {
		t.Fatal(err)
	}
	if !exited(p.PID()) {
		t.Error("runner still running after Stop")
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop created the removed directory again: %v", err)
	}
}
