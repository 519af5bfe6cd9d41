// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package gc

import (
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// TestAliveCacheOnlyKeeps checks the scan's cache of live PIDs: a cached
// lookup decides a directory only when it keeps it; a cached lookup that
// would make an orphan is looked up afresh, so death, reuse or another
// start time are concluded only from a lookup made after the state was
// read.
func TestAliveCacheOnlyKeeps(t *testing.T) {
	t.Parallel()
	self, err := procinfo.Self()
	if err != nil {
		t.Fatal(err)
	}
	ob := newObserver(time.Now)
	if ob.bootID == "" || ob.pidNS.Err != nil {
		t.Skip("no boot id or PID namespace to judge a PID by")
	}
	ob.alive = newAliveCache()
	exact := func(pid int, start uint64) dirFacts {
		f := ob.bare()
		f.State = &state.State{Version: 1, Active: true, PID: pid, Runner: &state.Identity{StartTime: start, BootID: ob.bootID, PIDNamespace: ob.pidNS.Inode}}
		return f
	}

	// Cached with another start time: an orphan by the cache, live by a
	// fresh lookup, which must win.
	ob.alive.put(self.PID, Process{Exists: true, StartTime: self.StartTime + 1})
	f := exact(self.PID, self.StartTime)
	if c := ob.lookupForScan(&f, reclaimPolicy{}); c != ClassLive || f.Process.StartTime != self.StartTime {
		t.Fatalf("stale cached start time: class %s, process %+v; want live from a fresh lookup", c, f.Process)
	}
	if pr, _ := ob.alive.get(self.PID); pr.StartTime != self.StartTime {
		t.Errorf("cache not refreshed: %+v", pr)
	}

	// A dead PID cached as a live runner: the cache keeps the directory
	// (a scan's verdicts are a snapshot; the next run reclaims it).
	const dead = 1 << 30
	ob.alive.put(dead, Process{Exists: true, StartTime: 42})
	f = exact(dead, 42)
	if c := ob.lookupForScan(&f, reclaimPolicy{}); c != ClassLive {
		t.Fatalf("cached live runner: class %s, want live", c)
	}
	// The same PID recorded with another start time would be an orphan by
	// the cache: looked up afresh, it is dead, and not cached.
	f = exact(dead, 43)
	if v := classify(f, reclaimPolicy{}); v.Class != ClassOrphan {
		t.Fatalf("precondition: %s %s", v.Class, v.Reason)
	}
	f = exact(dead, 43)
	if c := ob.lookupForScan(&f, reclaimPolicy{}); c != ClassOrphan || f.Process.Exists {
		t.Fatalf("cached live runner of another start time: class %s, process %+v; want orphan from a fresh lookup", c, f.Process)
	}

	// Collect's own observer has no cache: its decision under the locks
	// always looks up afresh.
	if newObserver(time.Now).alive != nil {
		t.Error("a plain observer has a cache")
	}
}
