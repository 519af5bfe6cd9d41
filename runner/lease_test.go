// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"maps"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stacklok/go-microvm/gc"
)

// An embedder SIGKILLed after the spawn leaves the runner holding the
// lease: the VM is live and every file is kept. Once the runner is
// SIGKILLed too, the collection reclaims the directory.
func TestEmbedderKilledAfterSpawn(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	ready := filepath.Join(t.TempDir(), "ready")
	h := startHelper(t, "spawn", "DATA_DIR="+dir, "RUNNER="+standinPath, "STANDIN_READY="+ready)
	runnerPID := readReady(t, ready)[0]
	if runnerPID != h.pid {
		t.Fatalf("stand-in says pid %d, embedder recorded %d", runnerPID, h.pid)
	}
	killOnCleanup(t, runnerPID)
	h.kill(t)

	if exited(runnerPID) {
		t.Fatal("runner died with its embedder")
	}
	if st := loadState(t, dir); !st.Active || !st.Leased || st.PID != runnerPID || st.Runner == nil {
		t.Fatalf("state after spawn: %+v", st)
	}
	if c := candidate(t, root, dir); c.Class != gc.ClassLive {
		t.Fatalf("scan with the runner alive: %s (%s) %s", c.Class, c.Reason, c.Detail)
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

	if err := syscall.Kill(runnerPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lease to be free", func() bool { return !leaseHeld(t, dir) })
	if c := candidate(t, root, dir); c.Class != gc.ClassOrphan {
		t.Fatalf("scan with the runner dead: %s (%s) %s", c.Class, c.Reason, c.Detail)
	}
	rep, err = gc.Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	if !reclaimed(rep, dir) {
		t.Fatalf("dead runner's directory not reclaimed: %+v", rep)
	}
	if _, ok := snapshot(t, root)["vm/rootfs-work"]; ok {
		t.Fatal("rootfs-work survived the collection")
	}
}

// An embedder SIGKILLed while cloning, before any runner exists, leaves an
// orphan that the collection reclaims.
func TestEmbedderKilledMidClone(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	h := startHelper(t, "clone", "DATA_DIR="+dir)
	if c := candidate(t, root, dir); c.Class != gc.ClassLive {
		t.Fatalf("scan while cloning: %s (%s) %s", c.Class, c.Reason, c.Detail)
	}
	h.kill(t)
	if !leaseFreed(t, dir) {
		t.Fatal("lease outlived the embedder that held it")
	}
	rep, err := gc.Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	if !reclaimed(rep, dir) {
		t.Fatalf("half-cloned directory not reclaimed: %+v", rep)
	}
	if _, ok := snapshot(t, root)["vm/rootfs-work"]; ok {
		t.Fatal("rootfs-work survived the collection")
	}
}

// The lease lives as long as any holder of the descriptor: a runner's
// child that inherited it keeps the VM live after the runner died.
func TestLeaseOutlivesRunnerWhileChildHoldsIt(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	p, pids := spawnClaimed(t, dir, []string{"STANDIN_CHILD=1"})
	if err := p.Close(); err != nil { // the creator lets go
		t.Fatal(err)
	}
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the runner to die", func() bool { return exited(p.PID()) })
	if c := candidate(t, root, dir); c.Class != gc.ClassLive {
		t.Fatalf("scan with the runner's child holding the lease: %s (%s)", c.Class, c.Reason)
	}
	if err := syscall.Kill(pids[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lease to be free", func() bool { return !leaseHeld(t, dir) })
	if c := candidate(t, root, dir); c.Class != gc.ClassOrphan {
		t.Fatalf("scan with every holder dead: %s (%s)", c.Class, c.Reason)
	}
}
