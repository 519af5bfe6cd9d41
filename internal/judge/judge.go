// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package judge is the one decision on a data directory and on the runner
// its state records, shared by gc (Classify, over facts an Observer
// gathers) and runner (Runner and State), so that the two never disagree
// on who is alive. It reads only the kernel, never the directory.
package judge

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// runnerName is the executable base name released go-microvm gives its
// runner; files with no start-time evidence are matched against it.
const runnerName = "go-microvm-runner"

// commLen is the length Linux truncates a process's comm to (TASK_COMM_LEN
// minus the terminating NUL); macOS keeps one byte more.
const commLen = 15

// startSlack absorbs the imprecision of wall-clock start times: Linux
// derives them from a boot time known to the second, and pid_start_time is
// taken just after the spawn, not at it.
const startSlack = 2 * time.Second

// Process is what the kernel said about the recorded PID when the facts
// were gathered.
type Process struct {
	// Exists is false when kill(pid, 0) says no process has the PID in
	// the collector's PID namespace; absence from /proc alone never makes
	// it false.
	Exists bool
	// Err is a lookup failure other than "no such process": the process
	// may exist (kill finds it but /proc does not show it, say), but
	// nothing about it is known.
	Err error
	// Zombie: exited, not yet reaped, with no live thread left (a
	// thread-group leader that exited while other threads run is alive).
	Zombie bool
	// Threads is the kernel's thread count, read for a process whose
	// leader has exited (0 when not read).
	Threads int
	// StartTime is the kernel start-time token (0 when unknown).
	StartTime uint64
	// Started is StartTime as wall-clock time (zero when unknown).
	Started time.Time
	// Comm is the kernel's short name ("" when unknown).
	Comm string
	// Argv0 is the process's argv[0] ("" when unknown).
	Argv0 string
	// Executable is the absolute executable path ("" when unreadable).
	Executable string
}

// Facts is everything the classification of one data directory depends
// on, gathered by syscalls beforehand. Callers must gather State before the
// probes: a creator takes the lease before it writes the marker, so a
// marker seen before a free lease means the run really ended.
type Facts struct {
	// State is the parsed state file; nil when StateErr is set.
	State *state.State
	// StateErr is why the state file could not be read.
	StateErr error
	// StateModTime is the state file's modification time, used for the age
	// of stopped VMs whose created_at is unset.
	StateModTime time.Time

	// LeaseHeld: someone else holds the run lease on the data directory.
	LeaseHeld bool
	// LeaseErr: the lease could not be probed.
	LeaseErr error
	// LockHeld: someone else holds the state lock.
	LockHeld bool
	// LockErr: the state lock could not be probed.
	LockErr error

	// Process is the lookup of State.PID; meaningful only for an active
	// state with a PID and no marker.
	Process Process

	// PIDNamespace is the collector's PID namespace, in which it judges
	// PIDs.
	PIDNamespace PIDNamespace
	// Elsewhere is what a look at every process found of the recorded PID
	// in nested PID namespaces; gathered only for a record that names no
	// namespace and that judgeHere would reclaim (see looksElsewhere).
	Elsewhere Elsewhere

	// BootID identifies the current boot ("" when unknown).
	BootID string
	// BootTime is when the current boot started (zero when unknown).
	BootTime time.Time
	// Now is the time the facts were gathered.
	Now time.Time

	// Leftover: the directory holds no state file, only the embedder's
	// owned entries and no data directory. Only LeaseHeld and LeaseErr
	// (the probe of a flock on the directory) count beside it.
	Leftover bool
}

// PIDNamespace is the PID namespace a collector judges PIDs in.
type PIDNamespace struct {
	// Inode identifies it (Linux: the inode of /proc/self/ns/pid); 0 on
	// platforms without PID namespaces, and when Err is set.
	Inode uint64
	// Initial is true for the host's PID namespace (and on platforms
	// without PID namespaces): there every process of the machine has a
	// PID.
	Initial bool
	// Err says why the namespace is unknown (/proc does not show the
	// collector itself); no PID is then judged.
	Err error
}

// Elsewhere is what was found of a PID in the PID namespaces nested below
// the collector's.
type Elsewhere struct {
	// Looked: the processes were looked at; Err or Procs says what came
	// of it.
	Looked bool
	// Err says why not every process could be seen.
	Err error
	// Procs are the processes that have the PID in a nested namespace.
	Procs []procinfo.Nested
}

// Policy is the caller's choice about what else is reclaimable.
type Policy struct {
	// Stopped makes inactive data directories at least StoppedMinAge old
	// orphans (ReasonStoppedExpired). That age is Facts.StoppedAge: it
	// runs from the later of created_at and the state file's modification
	// time, since a clean stop rewrites the file.
	Stopped       bool
	StoppedMinAge time.Duration
	// Veto: the embedder judges its leftovers (gc.WithKeep).
	Veto bool
}

// Age is how old the recorded VM is, from created_at or else the state
// file's last change; zero when unknown. It is for display only.
func (f *Facts) Age() time.Duration {
	var since time.Time
	switch {
	case f.State != nil && !f.State.CreatedAt.IsZero():
		since = f.State.CreatedAt
	case !f.StateModTime.IsZero():
		since = f.StateModTime
	default:
		return 0
	}
	return max(f.Now.Sub(since), 0)
}

// StoppedAge is the age gc.WithStopped compares: from the later of created_at
// and the state file's last change (a clean stop rewrites the file), so a
// VM stopped a moment ago is young. A created_at in the future is ignored;
// a last change in the future makes the age zero (unknown).
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

// Verdict is a decision: the class of a data directory (State), or
// the identity decision on a recorded runner (Runner), with the
// evidence that decided it and what was observed at the recorded PID.
type Verdict struct {
	// Class is ClassLive, ClassOrphan or ClassUnknown for Runner; any
	// class a collector gives for State.
	Class  Class
	Reason Reason
	// Detail says, for humans, what evidence decided.
	Detail string
	// Process is what the kernel said about the recorded PID (zero when
	// the PID was not looked up).
	Process Process
}

func verdict(c Class, r Reason, d string) Verdict {
	return Verdict{Class: c, Reason: r, Detail: d}
}

// decided reports whether the rule that returned v decided; one that
// leaves the facts to the next rule returns the zero Verdict.
func (v Verdict) decided() bool { return v.Class != "" }

// Classify decides the class of one data directory from its facts, reading
// nothing else, so every row of the classification table is a table test.
// Evidence is taken strongest first: the lease, the state lock, the state's
// readability, the run marker, then the boot and the PID rules.
func Classify(f Facts, p Policy) Verdict {
	if f.Leftover {
		return classifyLeftover(f, p)
	}
	if v := classifyProbes(f); v.decided() {
		return v
	}
	s := f.State
	switch {
	case s.Leased:
		return classifyMarked(f)
	case !s.Active:
		return classifyStopped(f, p)
	}
	return judgeRunner(f)
}

// classifyProbes decides from the probes of the lease and the state lock
// and from the reading of the state file, before anything the state says
// is believed. It leaves f.State set when it does not decide.
func classifyProbes(f Facts) Verdict {
	switch {
	case f.LeaseHeld:
		return verdict(ClassLive, ReasonLeaseHeld, "run lease is held")
	case f.LeaseErr != nil:
		return verdict(ClassUnknown, ReasonProbeFailed, "probe lease: "+f.LeaseErr.Error())
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

// classifyLeftover decides an embedder's leftovers: a flock on the
// directory keeps it, as a lease keeps a data directory; otherwise only
// the embedder can tell, and without its veto nothing can.
func classifyLeftover(f Facts, p Policy) Verdict {
	switch {
	case f.LeaseHeld:
		return verdict(ClassLive, ReasonLeaseHeld, "directory is flocked")
	case f.LeaseErr != nil:
		return verdict(ClassUnknown, ReasonProbeFailed, "probe flock: "+f.LeaseErr.Error())
	case !p.Veto:
		return verdict(ClassUnknown, ReasonNoVeto, "only the embedder's entries, and no veto to judge them")
	}
	return verdict(ClassOrphan, ReasonLeftover, "only the embedder's entries, no data directory")
}

// classifyMarked decides a record with the run marker set and the lease
// free. The creator sets the marker only while it holds the lease, and a
// clean stop clears it: set and free means nobody stopped it, unless the
// runner closed its inherited lease descriptor and still runs. Only the
// exact identity proves that, and where the PID cannot be judged (another
// namespace, /proc hiding it), the directory is kept rather than bet on.
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

// classifyStopped decides a cleanly stopped record: kept, unless the
// policy reclaims stopped ones and this one is old enough.
func classifyStopped(f Facts, p Policy) Verdict {
	age := f.StoppedAge()
	if p.Stopped && age >= p.StoppedMinAge {
		return verdict(ClassOrphan, ReasonStoppedExpired, fmt.Sprintf("stopped, age %s >= %s", age.Round(time.Second), p.StoppedMinAge))
	}
	if p.Stopped && age == 0 && (f.State.CreatedAt.After(f.Now) || f.StateModTime.After(f.Now)) {
		return verdict(ClassStopped, ReasonInactive, "stopped cleanly; its recorded times are in the future, so its age is unknown")
	}
	return verdict(ClassStopped, ReasonInactive, "stopped cleanly")
}

// judgeRunner is the one decision on whether the runner an active record
// names still runs (ClassLive, ClassOrphan or ClassUnknown), for Classify
// and, through Runner and State, for package runner. Death is
// concluded only from the process itself in the PID namespace it was
// recorded in; where that cannot be judged the record is unknown.
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

// judgeHere applies the PID rules in the collector's namespace, to a
// record of this boot whose PID it may judge.
func judgeHere(f Facts) Verdict {
	if v := classifyBeforeBoot(f); v.decided() {
		return v
	}
	return classifyProcess(f)
}

// looksElsewhere reports whether an orphan verdict on f's PID waits for
// the processes of other PID namespaces: the record has no marker and
// names no namespace (released go-microvm's), so an embedder in a
// container may have recorded its runner's PID as the container sees it.
// judgeRunner then judged the number in the host's namespace only.
func looksElsewhere(f Facts) bool {
	s := f.State
	return !s.Leased && (s.Runner == nil || s.Runner.PIDNamespace == 0)
}

// judgeElsewhere confirms here, the verdict of orphan on a record that
// names no PID namespace, only when no process that has the recorded PID
// in a nested namespace may be the runner: named as the runner, started
// when the recorded runner was (a runner binary of another name), or not
// readable. One that may keeps the directory as live; where the collector
// cannot see every process, or did not look, it is kept as unknown.
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
		named := nameOf(Process{Comm: p.Comm, Argv0: p.Info.Argv0, Executable: p.Info.Executable}, runnerWant(s)).agree > 0
		if !p.Zombie && (named || p.Err != nil || startedAsRecorded(s, p.Info)) {
			return verdict(ClassLive, ReasonRunnerOtherNamespace, fmt.Sprintf("%s here, but process %d, named %q, has pid %d in a nested PID namespace",
				here.Detail, p.PID, p.Comm, s.PID))
		}
	}
	return here
}

// spawnWindow bounds how long before its pid_start_time a runner can have
// started: released go-microvm records it right after the spawn returns.
const spawnWindow = time.Minute

// startedAsRecorded reports whether the process info started when the
// runner recorded in s did: the exact kernel start time where s has one,
// else within spawnWindow before pid_start_time. A process of a container
// started long before (its init, a shell) is not taken for the runner.
func startedAsRecorded(s *state.State, info procinfo.Info) bool {
	if s.Runner != nil && s.Runner.StartTime != 0 {
		return info.StartTime == s.Runner.StartTime
	}
	return !s.PIDStartTime.IsZero() && !info.Started.IsZero() &&
		!info.Started.Before(s.PIDStartTime.Add(-spawnWindow)) && !info.Started.After(s.PIDStartTime.Add(startSlack))
}

// classifyOtherBoot decides records whose recorded boot id is not the
// current one: their PID says nothing about the processes of this boot.
// It is the only boot rule that needs no process lookup.
func classifyOtherBoot(f Facts) Verdict {
	s := f.State
	if s.Runner != nil && s.Runner.BootID != "" && f.BootID != "" && s.Runner.BootID != f.BootID {
		return verdict(ClassOrphan, ReasonRebooted, fmt.Sprintf("recorded boot %s, current boot %s", s.Runner.BootID, f.BootID))
	}
	return Verdict{}
}

// classifyBeforeBoot decides records whose wall-clock pid_start_time is
// before this boot began. The boot time is wall-clock, and moves when the
// clock is stepped; a record with the exact identity of this boot is
// decided by the kernel start time instead, and one whose PID a process
// with the runner's name holds is kept (see ambiguous).
func classifyBeforeBoot(f Facts) Verdict {
	s := f.State
	if exactThisBoot(f) || s.PIDStartTime.IsZero() || f.BootTime.IsZero() || !s.PIDStartTime.Before(f.BootTime.Add(-startSlack)) {
		return Verdict{}
	}
	if v := ambiguous(f, "rebooted (recorded before this boot)"); v.decided() {
		return v
	}
	return verdict(ClassOrphan, ReasonRebooted, fmt.Sprintf("pid %d recorded at %s, before boot at %s",
		s.PID, s.PIDStartTime.UTC().Format(time.RFC3339), f.BootTime.UTC().Format(time.RFC3339)))
}

// unjudgeable keeps a record whose PID the collector cannot judge in the
// PID namespace it was recorded in. A record that names its namespace is
// judged only there. One that does not (released go-microvm's) is judged
// only from the host's namespace, where every process of the machine has
// a PID: from a container the same number may name nothing, and kill's
// ESRCH there would delete a VM that runs outside.
func unjudgeable(f Facts) Verdict {
	s, ns := f.State, f.PIDNamespace
	var rec uint64
	if s.Runner != nil {
		rec = s.Runner.PIDNamespace
	}
	switch {
	case ns.Err != nil:
		return verdict(ClassUnknown, ReasonPIDNamespaceUnknown, fmt.Sprintf("pid %d not judged: %v", s.PID, ns.Err))
	case rec != 0 && rec != ns.Inode:
		return verdict(ClassUnknown, ReasonOtherPIDNamespace, fmt.Sprintf("pid %d was recorded in PID namespace %d, the collector runs in %d; not its to judge",
			s.PID, rec, ns.Inode))
	case rec == 0 && !ns.Initial:
		return verdict(ClassUnknown, ReasonPIDNamespaceUnknown, fmt.Sprintf("pid %d was recorded without its PID namespace, and the collector runs in PID namespace %d, not the host's; not its to judge",
			s.PID, ns.Inode))
	}
	return Verdict{}
}

// exactThisBoot reports whether the state records the runner's exact
// identity (kernel start time) in the current, known boot.
func exactThisBoot(f Facts) bool {
	r := f.State.Runner
	return r != nil && r.StartTime != 0 && r.BootID != "" && r.BootID == f.BootID
}

// runnerAlive reports whether the lookup found a running, readable process.
func runnerAlive(pr Process) bool {
	return pr.Exists && pr.Err == nil && !pr.Zombie
}

// ambiguous keeps a record that a wall-clock rule alone would call an
// orphan while a process named as the runner holds its PID: the clock may
// have been stepped since the record, and deleting a live VM is worse
// than leaking one until the next run. clock says what the clock says.
func ambiguous(f Facts, clock string) Verdict {
	s, pr := f.State, f.Process
	if !runnerAlive(pr) {
		return Verdict{}
	}
	want := runnerWant(s)
	if n := nameOf(pr, want); n.agree > 0 {
		return verdict(ClassLive, ReasonRunnerAmbiguous, fmt.Sprintf("clock says %s, but pid %d %s; kept on the safe side", clock, s.PID, n))
	}
	return Verdict{}
}

// names is what the kernel says of a process's names against the runner's
// name: its executable (symlinks resolved), its comm and its argv[0] (the
// name it was started as, a symlink's own). Each known one that names the
// runner agrees, each other known one disagrees.
type names struct {
	agree, disagree int
	// exe: the executable names the runner.
	exe  bool
	desc []string
}

func (n names) String() string { return strings.Join(n.desc, ", ") }

// nameOf tallies pr's names against want.
func nameOf(pr Process, want string) names {
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
	// A comm is the name cut to commLen bytes (Linux) or more (macOS).
	vote("is named", pr.Comm, pr.Comm == want || len(pr.Comm) >= commLen && strings.HasPrefix(want, pr.Comm))
	vote("was started as", argv0, argv0 == want)
	return n
}

// baseName is filepath.Base of a non-empty path, "" for "".
func baseName(p string) string {
	if p == "" {
		return ""
	}
	return filepath.Base(p)
}

// namedOtherwise reports whether the names of pr that are known all
// contradict want, and some are known.
func namedOtherwise(pr Process, want string) bool {
	n := nameOf(pr, want)
	return n.agree == 0 && n.disagree > 0
}

// runnerWant is the executable base name the recorded runner has.
func runnerWant(s *state.State) string {
	if s.Runner != nil && s.Runner.Executable != "" {
		return filepath.Base(s.Runner.Executable)
	}
	return runnerName
}

// classifyProcess applies the PID rules to an active record of this boot:
// what the lookup found at the PID, then the strongest identity evidence
// the record has (kernel start time, then wall-clock start time, then
// only the name).
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

// byKernelStartTime decides by the recorded kernel start time, which
// identifies the process exactly. A record from another boot was decided
// before; one whose boot is not known is compared anyway, since a mismatch
// then means the recorded process is gone either way.
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

// byRecordedStartTime decides by the wall-clock pid_start_time, taken just
// after the spawn: the runner started at or before it. Two live processes
// never share a PID, so a process that started by then is the runner,
// whatever its name.
func byRecordedStartTime(f Facts) Verdict {
	s, pr := f.State, f.Process
	switch {
	case pr.Started.IsZero():
		return verdict(ClassLive, ReasonIdentityUnreadable, fmt.Sprintf("pid %d: start time unreadable", s.PID))
	case pr.Started.After(s.PIDStartTime.Add(startSlack)):
		if v := ambiguous(f, "pid reused (started after the record)"); v.decided() {
			return v
		}
		return verdict(ClassOrphan, ReasonPIDReused, fmt.Sprintf("pid %d started %s after the record",
			s.PID, pr.Started.Sub(s.PIDStartTime).Round(time.Second)))
	case namedOtherwise(pr, runnerWant(s)):
		// Only a clock stepped back since the record lets another
		// process that started before it hold the PID: kept, as the
		// runner may be, but not confirmed, so never signalled.
		return verdict(ClassLive, ReasonRunnerAmbiguous, fmt.Sprintf("pid %d started before the record, but is not a %s; kept on the safe side",
			s.PID, runnerWant(s)))
	default:
		return verdict(ClassLive, ReasonRunnerMatches, fmt.Sprintf("pid %d started before the record", s.PID))
	}
}

// byName decides a record with no time evidence at all by the process's
// names, as released versions do. The executable naming the runner
// confirms it; otherwise, where some names say runner and others not (a
// runner started through a symlink to a versioned file), it is kept but
// not confirmed, so never signalled.
func byName(f Facts) Verdict {
	s, pr := f.State, f.Process
	want := runnerWant(s)
	switch n := nameOf(pr, want); {
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
