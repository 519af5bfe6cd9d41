// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package judge

import (
	"errors"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// Observer gathers Facts. The boot and the PID namespace are read once:
// they cannot change while this process runs.
type Observer struct {
	bare Facts
	now  func() time.Time
}

// NewObserver reads the boot and the PID namespace now; now gives the time
// of each Bare. A boot fact the kernel does not give stays unknown.
func NewObserver(now func() time.Time) *Observer {
	ob := &Observer{now: now}
	ob.bare.BootID, _ = procinfo.BootID()
	ob.bare.BootTime, _ = procinfo.BootTime()
	ns, err := procinfo.CurrentPIDNamespace()
	ob.bare.PIDNamespace = PIDNamespace{Inode: ns.Inode, Initial: ns.Initial, Err: err}
	return ob
}

// Bare returns the facts every candidate has: the boot, the PID namespace
// and the time.
func (ob *Observer) Bare() Facts {
	f := ob.bare
	f.Now = ob.now()
	return f
}

// Runner decides now whether the runner s records still runs, by the
// rules a collector applies to an active record, whatever s's active flag
// and marker say. ClassLive with ReasonRunnerMatches is the recorded
// runner; ClassOrphan means it is gone; any other verdict means it may
// run, and it must be neither signalled nor have its directory taken over.
func Runner(s *state.State) Verdict {
	st := *s
	st.Active, st.Leased = true, false
	return decide(&st, judgeRunner)
}

// State returns the class a collector gives now, without WithStopped, to
// a data directory whose state is s and whose lease and state lock no
// other process holds.
func State(s *state.State) Verdict {
	return decide(s, func(f Facts) Verdict { return Classify(f, Policy{}) })
}

func decide(s *state.State, rule func(Facts) Verdict) Verdict {
	ob := NewObserver(time.Now)
	f := ob.Bare()
	f.State = s
	ob.LookupProcess(&f)
	v := rule(f)
	v.Process = f.Process
	return v
}

// LookupProcess fills f.Process, and f.Elsewhere, where Classify needs
// them, after f.State was read.
func (ob *Observer) LookupProcess(f *Facts) {
	if !needsLookup(f) {
		return
	}
	info, err := procinfo.Lookup(f.State.PID)
	switch {
	case errors.Is(err, procinfo.ErrNotExist):
		f.Process = Process{}
	case err != nil:
		f.Process = Process{Exists: true, Err: err}
	default:
		f.Process = Process{Exists: true, Info: info}
	}
	if !f.Elsewhere.Looked && looksElsewhere(*f) && judgeHere(*f).Class == ClassOrphan {
		procs, err := procinfo.FindNested(f.State.PID)
		f.Elsewhere = Elsewhere{Looked: true, Err: err, Procs: procs}
	}
}

// needsLookup: an active record without the marker, or a marked one with
// the exact identity of this boot, whose PID this collector may judge.
func needsLookup(f *Facts) bool {
	s := f.State
	switch {
	case s == nil || s.PID <= 0 || unjudgeable(*f).decided():
		return false
	case s.Leased:
		return exactThisBoot(*f)
	}
	return s.Active && !classifyOtherBoot(*f).decided()
}
