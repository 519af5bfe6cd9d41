// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLeasedDirsLive: the directories whose lease another process holds
// are live by their lease in Scan, not orphans in Orphans or Collect,
// whatever their state says; the others are reclaimed.
func TestLeasedDirsLive(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var leased []string
	for i := range 6 {
		dir := filepath.Join(root, fmt.Sprintf("vm-%02d", i))
		writeJSON(t, dir, orphanState())
		if i < 3 {
			leased = append(leased, dir)
		}
	}
	startHelper(t, "lease", strings.Join(leased, "\n"), "ready")
	cands, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, c := range cands {
		if c.Class == ClassLive && c.Reason == ReasonLeaseHeld {
			live++
		}
	}
	if live != 3 {
		t.Errorf("Scan: %d live by their lease, want 3: %+v", live, cands)
	}
	if orphans, err := Orphans(root); err != nil || len(orphans) != 3 {
		t.Errorf("Orphans = %v, %v; want the 3 free directories", orphans, err)
	}
	rep := collect(t, root)
	if len(rep.Reclaimed) != 3 || len(rep.Kept) != 3 {
		t.Fatalf("Collect: reclaimed %v, kept %v", rep.Reclaimed, rep.Kept)
	}
	mustExist(t, leased...)
}

// A flock on a directory that is not a data directory (an embedder's own
// lock on root/<name>, with the data directory at root/<name>/data) says
// nothing about what is below: it is not a candidate, and the orphan
// below it is reclaimed.
func TestFlockOnOtherDirectoryIsWalked(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	outer := filepath.Join(root, "vm1")
	data := filepath.Join(outer, "data")
	makeVM(t, data, orphanState())
	f, err := os.Open(outer)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	orphans, err := Orphans(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 1 || orphans[0].Path != data {
		t.Fatalf("Orphans = %+v, want the orphan %s below the flocked directory", orphans, data)
	}
	rep := collect(t, root)
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != data {
		t.Errorf("Reclaimed = %+v, want %s", rep.Reclaimed, data)
	}
	for _, k := range rep.Kept {
		if k.Path == outer {
			t.Errorf("a directory without a state file kept as a candidate: %+v", k)
		}
	}
	// Emptied by the reclaim, but flocked by its owner: it stays.
	if _, err := os.Stat(outer); err != nil {
		t.Errorf("the flocked directory itself must stay: %v", err)
	}
}
