// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/state"
)

func TestParseLockTable(t *testing.T) {
	t.Parallel()
	table := parseLockTable([]byte(`1: FLOCK  ADVISORY  WRITE 1234 00:2f:131078 0 EOF
2: -> FLOCK  ADVISORY  WRITE 1240 00:2f:131078 0 EOF
3: FLOCK  ADVISORY  READ  99 00:2f:5 0 EOF
4: POSIX  ADVISORY  WRITE 77 fd:01:6 0 EOF
5: FLOCK  ADVISORY  WRITE 88 fd:01:7 0 EOF
6: FLOCK  ADVISORY  WRITE 89 103:1a:8 0 EOF
7: FLOCK  ADVISORY  WRITE 90 zz:01:9 0 EOF
garbage
`))
	want := []fileKey{{0, 0x2f, 131078}, {0xfd, 1, 7}, {0x103, 0x1a, 8}}
	if len(table) != len(want) {
		t.Errorf("table %v, want exactly %v", table, want)
	}
	for _, k := range want {
		if _, ok := table[k]; !ok {
			t.Errorf("%+v missing from %v", k, table)
		}
	}
	// The device of a stat is matched by its major and minor numbers.
	if !table.held(unix.Mkdev(0xfd, 1), 7) || table.held(unix.Mkdev(0xfd, 1), 6) || table.held(unix.Mkdev(0, 0x2f), 5) {
		t.Errorf("held() disagrees with the table %v", table)
	}
}

// leasedRoot lays out n orphans by the marker under a new root, has a
// helper process hold the lease of the first half, and returns the root
// and the leased directories.
func leasedRoot(t *testing.T, n int) (root string, leased []string) {
	root = t.TempDir()
	for i := range n {
		dir := filepath.Join(root, fmt.Sprintf("vm-%02d", i))
		writeJSON(t, dir, orphanState())
		if i < n/2 {
			leased = append(leased, dir)
		}
	}
	startHelper(t, "lease", strings.Join(leased, "\n"), "ready")
	return root, leased
}

// enteredDirs records the directories the walk opens: h.entered does,
// and the function returned tells what it saw.
func enteredDirs(h *hooks) func() map[string]bool {
	var mu sync.Mutex
	seen := map[string]bool{}
	h.entered = func(rel string) {
		mu.Lock()
		seen[rel] = true
		mu.Unlock()
	}
	return func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

// TestLockTableListsRealLeases checks that /proc/locks lists the leases
// another process holds, by the device and inode a stat gives, and that a
// free directory is not listed.
func TestLockTableListsRealLeases(t *testing.T) {
	t.Parallel()
	root, leased := leasedRoot(t, 6)
	table := readLockTable("")
	if table == nil {
		t.Skip("no readable /proc/locks here")
	}
	for _, dir := range []string{leased[0], filepath.Join(root, "vm-05")} {
		var st unix.Stat_t
		if err := unix.Lstat(dir, &st); err != nil {
			t.Fatal(err)
		}
		want := dir != filepath.Join(root, "vm-05")
		if got := table.held(uint64(st.Dev), st.Ino); got != want {
			t.Errorf("%s: listed %v, want %v", dir, got, want)
		}
	}
}

// TestOrphansTrustsListedLeases checks that Orphans and Collect keep the
// leased directories live without opening them when the lock table lists
// their leases, and reclaim the others.
func TestOrphansTrustsListedLeases(t *testing.T) {
	t.Parallel()
	root, leased := leasedRoot(t, 6)
	if readLockTable("") == nil {
		t.Skip("no readable /proc/locks here")
	}
	var h hooks
	entered := enteredDirs(&h)
	orphans, err := Orphans(root, withHooks(h))
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 3 {
		t.Errorf("Orphans: %v, want the 3 free directories", orphans)
	}
	for _, dir := range leased {
		if entered()[filepath.Base(dir)] {
			t.Errorf("%s was opened although the lock table lists its lease", dir)
		}
	}
	rep := collect(t, root)
	if len(rep.Reclaimed) != 3 || len(rep.Kept) != 3 {
		t.Fatalf("Collect: reclaimed %v, kept %v", rep.Reclaimed, rep.Kept)
	}
	for _, c := range rep.Kept {
		if c.Class != ClassLive || c.Reason != ReasonLeaseHeld {
			t.Errorf("kept %s as %s (%s), want live (lease-held)", c.Path, c.Class, c.Reason)
		}
	}
	mustExist(t, leased...)
}

// TestLeaseProbedWithoutLockTable checks that with no lock table (not
// readable, or not listing the leases: another PID namespace), every
// directory is probed and the leased ones are still live.
func TestLeaseProbedWithoutLockTable(t *testing.T) {
	t.Parallel()
	empty := filepath.Join(t.TempDir(), "locks")
	writeFile(t, empty, "")
	for _, path := range []string{filepath.Join(t.TempDir(), "missing"), empty} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			root, leased := leasedRoot(t, 6)
			h := hooks{lockTable: path}
			entered := enteredDirs(&h)
			orphans, err := Orphans(root, withHooks(h))
			if err != nil {
				t.Fatal(err)
			}
			if len(orphans) != 3 {
				t.Errorf("Orphans: %v, want the 3 free directories", orphans)
			}
			for _, dir := range leased {
				if !entered()[filepath.Base(dir)] {
					t.Errorf("%s was not opened and probed", dir)
				}
			}
			cands, err := Scan(root, withHooks(h))
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
		})
	}
}

// TestListedLeaseKeepsADirectory checks the one way a stale table can
// err: a directory listed as leased is kept (a reclaim waits for the next
// collection), never the other way round.
func TestListedLeaseKeepsADirectory(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	writeJSON(t, dir, orphanState())
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		t.Fatal(err)
	}
	table := filepath.Join(t.TempDir(), "locks")
	writeFile(t, table, fmt.Sprintf("1: FLOCK  ADVISORY  WRITE 1 %02x:%02x:%d 0 EOF\n", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino))
	rep := collect(t, root, withHooks(hooks{lockTable: table}))
	if len(rep.Reclaimed) != 0 || len(rep.Kept) != 1 || rep.Kept[0].Reason != ReasonLeaseHeld {
		t.Fatalf("Collect: reclaimed %v, kept %+v", rep.Reclaimed, rep.Kept)
	}
	mustExist(t, filepath.Join(dir, state.FileName))
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
}

// A flock on a directory that is not a data directory (an embedder's own
// lock on root/<name>, with the data directory at root/<name>/data) is
// listed in /proc/locks like a lease. It must neither be reported as a
// live VM nor hide the orphan below it.
func TestListedLockOnOtherDirectoryIsWalked(t *testing.T) {
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
	var st unix.Stat_t
	if err := unix.Stat(outer, &st); err != nil {
		t.Fatal(err)
	}
	if !readLockTable("").held(uint64(st.Dev), st.Ino) {
		t.Skip("/proc/locks does not list this process's flock here; the shortcut is not taken")
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
	// Emptied by the reclaim, but flocked by its owner: it stays, as
	// their lock still names it.
	if _, err := os.Stat(outer); err != nil {
		t.Errorf("the flocked directory itself must stay: %v", err)
	}
}
