// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"time"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// observer gathers dirFacts. The boot and PID namespace facts are read once
// per sweep: they cannot change while this process runs.
type observer struct {
	bootID   string
	bootTime time.Time
	pidNS    pidNamespace
	now      func() time.Time
}

// bare returns the facts every candidate has: the boot, the PID namespace
// and the time.
func (ob *observer) bare() dirFacts {
	return dirFacts{BootID: ob.bootID, BootTime: ob.bootTime, PIDNamespace: ob.pidNS, Now: ob.now()}
}

func newObserver(now func() time.Time) *observer {
	// A boot fact the kernel does not give is left unknown: classify then
	// relies on the other evidence and never decides "rebooted" from it.
	id, _ := procinfo.BootID()
	bt, _ := procinfo.BootTime()
	return &observer{bootID: id, bootTime: bt, pidNS: currentPIDNamespace(), now: now}
}

// currentPIDNamespace is the collector's PID namespace, with the reason it
// is unknown when it is.
func currentPIDNamespace() pidNamespace {
	ns, err := procinfo.CurrentPIDNamespace()
	if err != nil {
		return pidNamespace{Err: err}
	}
	return pidNamespace{Inode: ns.Inode, Initial: ns.Initial}
}

// JudgeRunner decides, now, whether the runner that s records (its PID,
// pid_start_time and identity) still runs, by the rules a collector applies
// to an active record, whatever s's active flag and run marker say. It is
// the decision package runner makes before it attaches to or signals a
// runner, so that gc and runner never disagree on who is alive:
// ClassLive with ReasonRunnerMatches is the recorded runner; ClassOrphan
// means it is gone; any other verdict means it may run (the PID cannot be
// judged here, or the evidence is ambiguous), and it must be neither
// signalled nor have its directory taken over.
func JudgeRunner(s *state.State) Verdict {
	ob := newObserver(time.Now)
	f := ob.bare()
	st := *s
	st.Active, st.Leased = true, false
	f.State = &st
	ob.lookupProcess(&f)
	v := judgeRunner(f)
	v.Process = f.Process
	return v
}

// JudgeState returns the class a collector gives now, without
// WithStopped, to a data directory whose state is s and whose run lease
// and state lock no other process holds (the caller may hold them). Package
// runner claims a directory only when this verdict is not live or
// unknown: a directory a collector would keep as live is never taken over.
func JudgeState(s *state.State) Verdict {
	ob := newObserver(time.Now)
	f := ob.bare()
	f.State = s
	ob.lookupProcess(&f)
	v := classify(f, reclaimPolicy{})
	v.Process = f.Process
	return v
}

// probeMode says which probes observeAt makes.
type probeMode int

const (
	// probeAll finds the true class: the lease is probed for every
	// candidate, so a held lease shows as live whatever the state says.
	probeAll probeMode = iota
	// probeOrphans probes only what can change a would-be orphan's
	// verdict: a candidate that cannot be an orphan whatever the locks
	// say (inactive without WithStopped, no PID, unreadable, a runner
	// that matches) is classified from its state alone, without the
	// open and flocks of the probes.
	probeOrphans
)

// observeAt gathers the facts about d, whose state file the walk opened as
// sf (closed here), through the walk's own descriptors, changing nothing.
// The state is read before the probes: a creator takes the lease before it
// sets the marker, so a marker read first and a lease found free afterwards
// cannot be a run just starting.
func (ob *observer) observeAt(d datadir.Dir, sf datadir.StateFile, p reclaimPolicy, mode probeMode) (f dirFacts) {
	var fi datadir.FileInfo
	fi, f.StateErr = sf.Read(parseInto(&f.State))
	_ = sf.Close()
	f.StateModTime = fi.ModTime
	f.BootID, f.BootTime, f.PIDNamespace, f.Now = ob.bootID, ob.bootTime, ob.pidNS, ob.now()
	if f.StateErr != nil && mode == probeOrphans {
		// Unreadable whatever the locks say.
		return f
	}

	marked := f.State != nil && f.State.Leased
	if mode == probeAll || marked {
		if f.LeaseHeld, f.LeaseErr = d.ProbeLease(); f.LeaseHeld || f.LeaseErr != nil {
			// classify looks no further.
			return f
		}
	}
	ob.lookupProcess(&f)
	if classify(f, p).Class != ClassOrphan {
		return f
	}
	if mode == probeOrphans && !marked {
		if f.LeaseHeld, f.LeaseErr = d.ProbeLease(); f.LeaseHeld || f.LeaseErr != nil {
			return f
		}
	}
	// A held state lock turns only an orphan into busy; any other verdict
	// keeps the directory all the same. So the lock, an open and two
	// flocks, is probed only for would-be orphans, and a kept directory
	// whose lock happens to be held is reported with its other verdict.
	f.LockHeld, f.LockErr = d.ProbeLock()
	return f
}

// lookupProcess fills f.Process when classify will need it: for the PID
// rules of an active record without the marker, and for a marked record
// with the exact identity of this boot, whose runner may live on without
// the lease. A marked record without it is an orphan whatever /proc says.
func (ob *observer) lookupProcess(f *dirFacts) {
	if needsLookup(f) {
		f.Process = processAt(f.State.PID)
		lookElsewhere(f)
	}
}

// waitsElsewhere reports whether judgeRunner's verdict on f waits for
// f.Elsewhere: the record names no PID namespace, and the PID rules here
// would reclaim it.
func waitsElsewhere(f dirFacts) bool {
	return !f.Elsewhere.Looked && looksElsewhere(f) && judgeHere(f).Class == ClassOrphan
}

// lookElsewhere fills f.Elsewhere when judgeRunner waits for it, looking
// at every process: after the lookup of the PID, and so after the state
// was read, so that a runner recorded by then is seen.
func lookElsewhere(f *dirFacts) {
	if waitsElsewhere(*f) {
		procs, err := procinfo.FindNested(f.State.PID)
		f.Elsewhere = elsewhere{Looked: true, Err: err, Procs: procs}
	}
}

// needsLookup reports whether classify needs the process at the recorded
// PID (see lookupProcess).
func needsLookup(f *dirFacts) bool {
	s := f.State
	if s == nil || s.PID <= 0 {
		return false
	}
	switch {
	case s.Leased:
		if !exactThisBoot(*f) {
			return false
		}
	case !s.Active:
		return false
	default:
		if classifyOtherBoot(*f).decided() {
			// A record from an earlier boot says nothing about this
			// boot's process with that PID.
			return false
		}
	}
	if unjudgeable(*f).decided() {
		// The number names another namespace's process, or none.
		return false
	}
	return true
}

// processAt asks the kernel about pid.
func processAt(pid int) Process {
	info, err := procinfo.Lookup(pid)
	switch {
	case errors.Is(err, procinfo.ErrNotExist):
		return Process{}
	case err != nil:
		return Process{Exists: true, Err: err}
	}
	return Process{
		Exists:     true,
		Zombie:     info.Zombie,
		Threads:    info.Threads,
		StartTime:  info.StartTime,
		Started:    info.Started,
		Comm:       info.Comm,
		Argv0:      info.Argv0,
		Executable: info.Executable,
	}
}
