// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package judge

import (
	"errors"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// Observer gathers Facts. The boot and PID namespace facts are read once
// per sweep: they cannot change while this process runs.
type Observer struct {
	bootID   string
	bootTime time.Time
	pidNS    PIDNamespace
	now      func() time.Time
}

// Bare returns the facts every candidate has: the boot, the PID namespace
// and the time.
func (ob *Observer) Bare() Facts {
	return Facts{BootID: ob.bootID, BootTime: ob.bootTime, PIDNamespace: ob.pidNS, Now: ob.now()}
}

// NewObserver reads the boot and the PID namespace now; now gives the time
// of each Bare.
func NewObserver(now func() time.Time) *Observer {
	// A boot fact the kernel does not give is left unknown: Classify then
	// relies on the other evidence and never decides "rebooted" from it.
	id, _ := procinfo.BootID()
	bt, _ := procinfo.BootTime()
	return &Observer{bootID: id, bootTime: bt, pidNS: currentPIDNamespace(), now: now}
}

// currentPIDNamespace is the collector's PID namespace, with the reason it
// is unknown when it is.
func currentPIDNamespace() PIDNamespace {
	ns, err := procinfo.CurrentPIDNamespace()
	if err != nil {
		return PIDNamespace{Err: err}
	}
	return PIDNamespace{Inode: ns.Inode, Initial: ns.Initial}
}

// Runner decides, now, whether the runner that s records (its PID,
// pid_start_time and identity) still runs, by the rules a collector applies
// to an active record, whatever s's active flag and run marker say. It is
// the decision package runner makes before it attaches to or signals a
// runner, so that gc and runner never disagree on who is alive:
// ClassLive with ReasonRunnerMatches is the recorded runner; ClassOrphan
// means it is gone; any other verdict means it may run (the PID cannot be
// judged here, or the evidence is ambiguous), and it must be neither
// signalled nor have its directory taken over.
func Runner(s *state.State) Verdict {
	ob := NewObserver(time.Now)
	f := ob.Bare()
	st := *s
	st.Active, st.Leased = true, false
	f.State = &st
	ob.LookupProcess(&f)
	v := judgeRunner(f)
	v.Process = f.Process
	return v
}

// State returns the class a collector gives now, without
// WithStopped, to a data directory whose state is s and whose run lease
// and state lock no other process holds (the caller may hold them). Package
// runner claims a directory only when this verdict is not live or
// unknown: a directory a collector would keep as live is never taken over.
func State(s *state.State) Verdict {
	ob := NewObserver(time.Now)
	f := ob.Bare()
	f.State = s
	ob.LookupProcess(&f)
	v := Classify(f, Policy{})
	v.Process = f.Process
	return v
}

// LookupProcess fills f.Process when Classify will need it: for the PID
// rules of an active record without the marker, and for a marked record
// with the exact identity of this boot, whose runner may live on without
// the lease. A marked record without it is an orphan whatever /proc says.
func (ob *Observer) LookupProcess(f *Facts) {
	if needsLookup(f) {
		f.Process = processAt(f.State.PID)
		lookElsewhere(f)
	}
}

// waitsElsewhere reports whether judgeRunner's verdict on f waits for
// f.Elsewhere: the record names no PID namespace, and the PID rules here
// would reclaim it.
func waitsElsewhere(f Facts) bool {
	return !f.Elsewhere.Looked && looksElsewhere(f) && judgeHere(f).Class == ClassOrphan
}

// lookElsewhere fills f.Elsewhere when judgeRunner waits for it, looking
// at every process: after the lookup of the PID, and so after the state
// was read, so that a runner recorded by then is seen.
func lookElsewhere(f *Facts) {
	if waitsElsewhere(*f) {
		procs, err := procinfo.FindNested(f.State.PID)
		f.Elsewhere = Elsewhere{Looked: true, Err: err, Procs: procs}
	}
}

// needsLookup reports whether Classify needs the process at the recorded
// PID (see LookupProcess).
func needsLookup(f *Facts) bool {
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
