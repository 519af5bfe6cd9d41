// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package judge is the one decision on a data directory and on the runner
// its state records, shared by gc (Classify, over facts an Observer
// gathers) and runner (Runner and State), so that the two never disagree
// on who is alive. It reads only the kernel, never the directory.
package judge

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

const (
	runnerName  = "go-microvm-runner" // released go-microvm's runner
	commLen     = 15                  // Linux truncates a comm to it
	startSlack  = 2 * time.Second     // the imprecision of wall-clock start times
	spawnWindow = time.Minute         // how long before pid_start_time a runner starts
)

// Process is what the kernel said about the recorded PID.
type Process struct {
	Exists bool  // false only when kill(pid, 0) says no process has the PID
	Err    error // a lookup failure other than ErrNotExist: nothing is known
	procinfo.Info
}

// Facts is everything the classification of one data directory depends
// on. State must be gathered before the probes: a creator takes the lease
// before it writes the marker, so a marker seen before a free lease means
// the run ended.
type Facts struct {
	State        *state.State // nil when StateErr is set
	StateErr     error        // why the state file could not be read
	StateModTime time.Time

	LeaseHeld bool // someone else holds the run lease
	LeaseErr  error
	LockHeld  bool // someone else holds the state lock
	LockErr   error

	Process         Process // filled by Observer.LookupProcess
	PIDNamespace    procinfo.PIDNamespace
	PIDNamespaceErr error     // why it is unknown; no PID is then judged
	Elsewhere       Elsewhere // filled by Observer.LookupProcess

	BootID   string    // "" when unknown
	BootTime time.Time // zero when unknown
	Now      time.Time

	Leftover bool // no state file, only the embedder's entries; only LeaseHeld and LeaseErr count
}

// Elsewhere is what was found of a PID in nested PID namespaces.
type Elsewhere struct {
	Looked bool
	Err    error // why not every process could be seen
	Procs  []procinfo.Nested
}

// Policy is the caller's choice about what else is reclaimable.
type Policy struct {
	Stopped       bool // inactive ones whose StoppedAge >= StoppedMinAge are orphans
	StoppedMinAge time.Duration
	Veto          bool // the embedder judges its leftovers (gc.WithKeep)
}

// Age is how old the recorded VM is, from created_at or else the state
// file's last change; zero when unknown. It is for display only.
func (f *Facts) Age() time.Duration {
	since := f.StateModTime
	if f.State != nil && !f.State.CreatedAt.IsZero() {
		since = f.State.CreatedAt
	}
	if since.IsZero() {
		return 0
	}
	return max(f.Now.Sub(since), 0)
}

// StoppedAge is the age gc.WithStopped compares: from the later of
// created_at and the state file's last change (a clean stop rewrites the
// file). A created_at in the future is ignored; a last change in the
// future makes the age zero.
func (f *Facts) StoppedAge() time.Duration {
	var since time.Time
	if f.State != nil && !f.State.CreatedAt.After(f.Now) {
		since = f.State.CreatedAt
	}
	if f.StateModTime.After(since) {
		since = f.StateModTime
	}
	if since.IsZero() {
		return 0
	}
	return max(f.Now.Sub(since), 0)
}

// Verdict is a decision with the evidence that decided it and what was
// observed at the recorded PID (zero when it was not looked up).
type Verdict struct {
	Class   Class // ClassLive, ClassOrphan or ClassUnknown for Runner
	Reason  Reason
	Detail  string // for humans
	Process Process
}

func verdict(c Class, r Reason, d string) Verdict {
	return Verdict{Class: c, Reason: r, Detail: d}
}

// decided: a rule that leaves the facts to the next returns Verdict{}.
func (v Verdict) decided() bool { return v.Class != "" }

// Classify decides the class of one data directory from its facts (the
// classification table of docs/DESIGN.md), reading nothing else.
func Classify(f Facts, p Policy) Verdict {
	if v := classifyProbes(f, p); v.decided() {
		return v
	}
	switch {
	case f.State.Leased:
		return classifyMarked(f)
	case !f.State.Active:
		return classifyStopped(f, p)
	}
	return judgeRunner(f)
}

// classifyProbes decides from the probes, the state's readability and Leftover.
func classifyProbes(f Facts, p Policy) Verdict {
	lease := "run lease"
	if f.Leftover {
		lease = "flock on the directory"
	}
	switch {
	case f.LeaseHeld:
		return verdict(ClassLive, ReasonLeaseHeld, lease+" is held")
	case f.LeaseErr != nil:
		return verdict(ClassUnknown, ReasonProbeFailed, "probe "+lease+": "+f.LeaseErr.Error())
	case f.Leftover && !p.Veto:
		return verdict(ClassUnknown, ReasonNoVeto, "only the embedder's entries, and no veto to judge them")
	case f.Leftover:
		return verdict(ClassOrphan, ReasonLeftover, "only the embedder's entries, no data directory")
	case f.LockHeld:
		return verdict(ClassBusy, ReasonStateLocked, "state lock is held")
	case f.LockErr != nil:
		return verdict(ClassUnknown, ReasonProbeFailed, "probe state lock: "+f.LockErr.Error())
	case f.StateErr != nil:
		return verdict(ClassUnreadable, ReasonUnreadable, f.StateErr.Error())
	case f.State == nil:
		return verdict(ClassUnreadable, ReasonUnreadable, "no state")
	}
	return Verdict{}
}

// classifyMarked: marker set, lease free. Only the exact identity of this
// boot can prove the runner lives on without its lease.
func classifyMarked(f Facts) Verdict {
	s := f.State
	if s.PID > 0 && exactThisBoot(f) {
		switch v := judgeRunner(f); {
		case v.Class == ClassLive && v.Reason == ReasonRunnerMatches:
			return verdict(ClassLive, ReasonLeaseLost, fmt.Sprintf("run lease is free but the recorded runner (pid %d) is alive", s.PID))
		case v.Class != ClassOrphan:
			v.Detail = "run lease is free, but " + v.Detail
			return v
		}
	}
	return verdict(ClassOrphan, ReasonRunEnded, "run marker set and run lease free")
}

func classifyStopped(f Facts, p Policy) Verdict {
	age := f.StoppedAge()
	switch {
	case !p.Stopped:
		return verdict(ClassStopped, ReasonInactive, "stopped cleanly")
	case age >= p.StoppedMinAge:
		return verdict(ClassOrphan, ReasonStoppedExpired, fmt.Sprintf("stopped, age %s >= %s (since its last change)", age.Round(time.Second), p.StoppedMinAge))
	case age == 0 && (f.State.CreatedAt.After(f.Now) || f.StateModTime.After(f.Now)):
		return verdict(ClassStopped, ReasonInactive, "stopped cleanly; its recorded times are in the future, so its age is unknown")
	}
	return verdict(ClassStopped, ReasonInactive, fmt.Sprintf("stopped cleanly, age %s < %s (since its last change)", age.Round(time.Second), p.StoppedMinAge))
}

// judgeRunner decides whether the runner an active record names still runs.
func judgeRunner(f Facts) Verdict {
	s := f.State
	if s.PID <= 0 {
		return verdict(ClassUnknown, ReasonNoPID, "active with no pid")
	}
	if v := classifyOtherBoot(f); v.decided() {
		return v
	}
	if v := unjudgeable(f); v.decided() {
		return v
	}
	v := judgeHere(f)
	if v.Class == ClassOrphan && looksElsewhere(f) {
		return judgeElsewhere(f, v)
	}
	return v
}

// looksElsewhere: the record has no marker and names no PID namespace, so
// an embedder in a container may have recorded the PID as it saw it.
func looksElsewhere(f Facts) bool {
	s := f.State
	return !s.Leased && (s.Runner == nil || s.Runner.PIDNamespace == 0)
}

// judgeElsewhere keeps here's orphan verdict only when no process with the
// PID in a nested namespace may be the runner.
func judgeElsewhere(f Facts, here Verdict) Verdict {
	s, e := f.State, f.Elsewhere
	switch {
	case !e.Looked:
		return verdict(ClassUnknown, ReasonPIDNamespaceUnknown, fmt.Sprintf("%s here, but pid %d was recorded without its PID namespace, and other namespaces were not looked at",
			here.Detail, s.PID))
	case e.Err != nil:
		return verdict(ClassUnknown, ReasonPIDNamespaceUnknown, fmt.Sprintf("%s here, but pid %d was recorded without its PID namespace: %v",
			here.Detail, s.PID, e.Err))
	}
	for _, p := range e.Procs {
		named := nameOf(p.Info, runnerWant(s)).agree > 0
		if !p.Info.Zombie && (named || p.Err != nil || startedAsRecorded(s, p.Info)) {
			return verdict(ClassLive, ReasonRunnerOtherNamespace, fmt.Sprintf("%s here, but process %d, named %q, has pid %d in a nested PID namespace",
				here.Detail, p.PID, p.Info.Comm, s.PID))
		}
	}
	return here
}

// startedAsRecorded: the recorded kernel start time, else near pid_start_time.
func startedAsRecorded(s *state.State, info procinfo.Info) bool {
	if s.Runner != nil && s.Runner.StartTime != 0 {
		return info.StartTime == s.Runner.StartTime
	}
	return !s.PIDStartTime.IsZero() && !info.Started.IsZero() &&
		!info.Started.Before(s.PIDStartTime.Add(-spawnWindow)) && !info.Started.After(s.PIDStartTime.Add(startSlack))
}

func classifyOtherBoot(f Facts) Verdict {
	s := f.State
	if s.Runner != nil && s.Runner.BootID != "" && f.BootID != "" && s.Runner.BootID != f.BootID {
		return verdict(ClassOrphan, ReasonRebooted, fmt.Sprintf("recorded boot %s, current boot %s", s.Runner.BootID, f.BootID))
	}
	return Verdict{}
}

// judgeHere applies the PID rules in the collector's namespace, first
// pid_start_time before this boot, by a clock that may have been stepped.
func judgeHere(f Facts) Verdict {
	s := f.State
	if exactThisBoot(f) || s.PIDStartTime.IsZero() || f.BootTime.IsZero() || !s.PIDStartTime.Before(f.BootTime.Add(-startSlack)) {
		return classifyProcess(f)
	}
	if v := ambiguous(f, "rebooted (recorded before this boot)"); v.decided() {
		return v
	}
	return verdict(ClassOrphan, ReasonRebooted, fmt.Sprintf("pid %d recorded at %s, before boot at %s",
		s.PID, s.PIDStartTime.UTC().Format(time.RFC3339), f.BootTime.UTC().Format(time.RFC3339)))
}

// unjudgeable keeps a record whose PID's namespace is not the collector's;
// a record naming none is judged only from the host's.
func unjudgeable(f Facts) Verdict {
	s, ns := f.State, f.PIDNamespace
	var rec uint64
	if s.Runner != nil {
		rec = s.Runner.PIDNamespace
	}
	switch {
	case f.PIDNamespaceErr != nil:
		return verdict(ClassUnknown, ReasonPIDNamespaceUnknown, fmt.Sprintf("pid %d not judged: %v", s.PID, f.PIDNamespaceErr))
	case rec != 0 && rec != ns.Inode:
		return verdict(ClassUnknown, ReasonOtherPIDNamespace, fmt.Sprintf("pid %d was recorded in PID namespace %d, the collector runs in %d; not its to judge",
			s.PID, rec, ns.Inode))
	case rec == 0 && !ns.Initial:
		return verdict(ClassUnknown, ReasonPIDNamespaceUnknown, fmt.Sprintf("pid %d was recorded without its PID namespace, and the collector runs in PID namespace %d, not the host's; not its to judge",
			s.PID, ns.Inode))
	}
	return Verdict{}
}

// exactThisBoot: the record has a kernel start time from this, known boot.
func exactThisBoot(f Facts) bool {
	r := f.State.Runner
	return r != nil && r.StartTime != 0 && r.BootID != "" && r.BootID == f.BootID
}

// ambiguous keeps a record that the clock rule alone would reclaim while a
// process named as the runner holds its PID.
func ambiguous(f Facts, clock string) Verdict {
	s, pr := f.State, f.Process
	if !pr.Exists || pr.Err != nil || pr.Zombie {
		return Verdict{}
	}
	if n := nameOf(pr.Info, runnerWant(s)); n.agree > 0 {
		return verdict(ClassLive, ReasonRunnerAmbiguous, fmt.Sprintf("clock says %s, but pid %d %s; kept on the safe side", clock, s.PID, n))
	}
	return Verdict{}
}

// names tallies a process's names (executable, comm, argv[0]) against want.
type names struct {
	agree, disagree int
	exe             bool // the executable names the runner
	desc            []string
}

func (n names) String() string { return strings.Join(n.desc, ", ") }

func nameOf(pr procinfo.Info, want string) names {
	var n names
	vote := func(what, got string, ok bool) bool {
		if got == "" {
			return false
		}
		if ok {
			n.agree++
		} else {
			n.disagree++
		}
		n.desc = append(n.desc, fmt.Sprintf("%s %q", what, got))
		return ok
	}
	exe, argv0 := baseName(pr.Executable), baseName(pr.Argv0)
	n.exe = vote("runs", exe, exe == want)
	vote("is named", pr.Comm, NamedAs(pr.Comm, want))
	vote("was started as", argv0, argv0 == want)
	return n
}

// NamedAs reports whether name, a base name or a comm (which Linux
// truncates to 15 bytes), is want.
func NamedAs(name, want string) bool {
	return name == want || len(name) >= commLen && strings.HasPrefix(want, name)
}

func baseName(p string) string {
	if p == "" {
		return ""
	}
	return filepath.Base(p)
}

func runnerWant(s *state.State) string {
	if s.Runner != nil && s.Runner.Executable != "" {
		return filepath.Base(s.Runner.Executable)
	}
	return runnerName
}

// classifyProcess applies the PID rules, strongest identity evidence
// first: kernel start time, then pid_start_time, then the names.
func classifyProcess(f Facts) Verdict {
	s, pr := f.State, f.Process
	switch {
	case pr.Err != nil:
		return verdict(ClassLive, ReasonIdentityUnreadable, fmt.Sprintf("pid %d: %v", s.PID, pr.Err))
	case !pr.Exists:
		return verdict(ClassOrphan, ReasonRunnerDead, fmt.Sprintf("no process has pid %d", s.PID))
	case pr.Zombie:
		return verdict(ClassOrphan, ReasonRunnerZombie, fmt.Sprintf("pid %d is a zombie", s.PID))
	case s.Runner != nil && s.Runner.StartTime != 0:
		return byKernelStartTime(f)
	case !s.PIDStartTime.IsZero():
		return byRecordedStartTime(f)
	}
	return byName(f)
}

func byKernelStartTime(f Facts) Verdict {
	s, pr := f.State, f.Process
	switch pr.StartTime {
	case 0:
		return verdict(ClassLive, ReasonIdentityUnreadable, fmt.Sprintf("pid %d: start time unreadable", s.PID))
	case s.Runner.StartTime:
		return verdict(ClassLive, ReasonRunnerMatches, fmt.Sprintf("pid %d has the recorded start time", s.PID))
	default:
		return verdict(ClassOrphan, ReasonPIDReused, fmt.Sprintf("pid %d start time %d, recorded %d", s.PID, pr.StartTime, s.Runner.StartTime))
	}
}

// byRecordedStartTime: the runner started at or before pid_start_time, so
// a process that started by then is the runner, whatever its name.
func byRecordedStartTime(f Facts) Verdict {
	s, pr := f.State, f.Process
	n := nameOf(pr.Info, runnerWant(s))
	switch {
	case pr.Started.IsZero():
		return verdict(ClassLive, ReasonIdentityUnreadable, fmt.Sprintf("pid %d: start time unreadable", s.PID))
	case pr.Started.After(s.PIDStartTime.Add(startSlack)):
		if v := ambiguous(f, "pid reused (started after the record)"); v.decided() {
			return v
		}
		return verdict(ClassOrphan, ReasonPIDReused, fmt.Sprintf("pid %d started %s after the record",
			s.PID, pr.Started.Sub(s.PIDStartTime).Round(time.Second)))
	case n.agree == 0 && n.disagree > 0:
		// Only a clock stepped back lets another process hold the PID:
		// kept, but never signalled.
		return verdict(ClassLive, ReasonRunnerAmbiguous, fmt.Sprintf("pid %d started before the record, but is not a %s; kept on the safe side",
			s.PID, runnerWant(s)))
	default:
		return verdict(ClassLive, ReasonRunnerMatches, fmt.Sprintf("pid %d started before the record", s.PID))
	}
}

// byName decides a record with no time evidence by the names, as released
// versions do; names that disagree among themselves keep it unconfirmed.
func byName(f Facts) Verdict {
	s, pr := f.State, f.Process
	want := runnerWant(s)
	switch n := nameOf(pr.Info, want); {
	case n.agree == 0 && n.disagree == 0:
		return verdict(ClassLive, ReasonIdentityUnreadable, fmt.Sprintf("pid %d: executable and names unreadable", s.PID))
	case n.agree == 0:
		return verdict(ClassOrphan, ReasonPIDReused, fmt.Sprintf("pid %d %s, not %q", s.PID, n, want))
	case n.exe || n.disagree == 0:
		return verdict(ClassLive, ReasonRunnerMatches, fmt.Sprintf("pid %d %s", s.PID, n))
	default:
		return verdict(ClassLive, ReasonRunnerAmbiguous, fmt.Sprintf("pid %d %s: not all %q; kept on the safe side", s.PID, n, want))
	}
}

// Observer gathers Facts.
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
	ob.bare.PIDNamespace, ob.bare.PIDNamespaceErr = procinfo.CurrentPIDNamespace()
	return ob
}

// Bare returns the facts every candidate has: boot, PID namespace, time.
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

// LookupProcess fills f.Process and f.Elsewhere where Classify needs them.
func (ob *Observer) LookupProcess(f *Facts) {
	if !needsLookup(f) {
		return
	}
	info, err := procinfo.Lookup(f.State.PID) // Info{} on error
	f.Process = Process{Exists: true, Err: err, Info: info}
	if errors.Is(err, procinfo.ErrNotExist) {
		f.Process = Process{}
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
