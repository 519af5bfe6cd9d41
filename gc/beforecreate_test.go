// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/state"
)

// BeforeCreate reclaims the orphans under root, skips a root another
// collector holds, does nothing for a missing root, and fails only when its
// context is done.
func TestBeforeCreate(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	orphan := filepath.Join(root, "crashed")
	makeVM(t, orphan, orphanState())
	var logs bytes.Buffer
	check := BeforeCreate(root, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	// Another collector holds the root: skipped at once, nothing touched.
	h := startHelper(t, "rootlock", root, "ready")
	if err := check(t.Context()); err != nil {
		t.Fatalf("BeforeCreate with the root lock held: %v, want nil", err)
	}
	mustExist(t, orphan)
	h.Kill()

	if err := check(t.Context()); err != nil {
		t.Fatalf("BeforeCreate: %v", err)
	}
	mustNotExist(t, orphan)
	if !strings.Contains(logs.String(), "reclaimed=1") {
		t.Errorf("log does not say what was reclaimed:\n%s", logs.String())
	}

	if err := BeforeCreate(filepath.Join(root, "missing"))(t.Context()); err != nil {
		t.Errorf("BeforeCreate on a missing root: %v, want nil", err)
	}

	makeVM(t, orphan, orphanState())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := check(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("BeforeCreate with a cancelled context: %v, want Canceled", err)
	}
}

// With WithCreating, the check claims the new data directory before it
// collects: a creation in progress in another process is live to every
// collection, and once that process is SIGKILLed the next collection
// reclaims the directory and what was cloned into it.
func TestBeforeCreateCreatingKilled(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "new")
	h := startHelper(t, "creating", root+"\n"+dir, "ready")
	s, err := state.ReadFile(filepath.Join(dir, state.FileName))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Leased || s.Active || s.PID != 0 {
		t.Fatalf("state of a claimed creation: %+v, want the run marker and no runner", s)
	}
	if c := scanOne(t, root, dir); c.Class != ClassLive {
		t.Fatalf("creation in progress is %s (%s), want live", c.Class, c.Reason)
	}
	collect(t, root)
	mustExist(t, filepath.Join(dir, rootfsWorkName, "etc", "hostname"))

	h.Kill()
	rep := collect(t, root)
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Reason != ReasonRunEnded {
		t.Fatalf("after the creator was killed: reclaimed %+v, want the creation (run ended)", rep.Reclaimed)
	}
	mustNotExist(t, dir)
}

// The claim is this process's until it lets go: the check's own
// collection keeps it, a retried check reuses it, a live runner recorded
// in the directory fails the check, and closing the kept lease hands the
// directory to the next collection.
func TestBeforeCreateCreatingInProcess(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "new")
	// An earlier run left an orphan at dir: the claim takes it over.
	makeVM(t, dir, orphanState())
	check := BeforeCreate(root, WithCreating(dir))
	for range 2 {
		if err := check(t.Context()); err != nil {
			t.Fatalf("check: %v", err)
		}
	}
	mustExist(t, filepath.Join(dir, rootfsWorkName))
	if c := scanOne(t, root, dir); c.Class != ClassLive {
		t.Fatalf("claimed directory is %s (%s), want live", c.Class, c.Reason)
	}
	if err := state.Kept(dir).Close(); err != nil {
		t.Fatal(err)
	}
	if state.Kept(dir) != nil {
		t.Fatal("lease still kept after Close")
	}
	waitLeaseFree(t, dir)
	if c := scanOne(t, root, dir); c.Class != ClassOrphan || c.Reason != ReasonRunEnded {
		t.Fatalf("after letting go: %s (%s), want orphan (run ended)", c.Class, c.Reason)
	}

	// A runner of a released version lives at busy: the check refuses.
	busy := filepath.Join(root, "busy")
	r := startRunner(t)
	now := time.Now()
	released := &state.State{Version: 1, Active: true, Name: "busy", PID: r.Process.Pid, PIDStartTime: now, CreatedAt: now}
	makeVM(t, busy, released)
	if err := BeforeCreate(root, WithCreating(busy))(t.Context()); err == nil {
		t.Fatal("check over a live runner's directory succeeded")
	}
	if s, err := state.ReadFile(filepath.Join(busy, state.FileName)); err != nil || s.Leased || s.PID != r.Process.Pid {
		t.Fatalf("state of the live runner's directory: %+v, %v; want it untouched", s, err)
	}
	if state.Kept(busy) != nil {
		t.Fatal("a refused claim left a kept lease")
	}
}
