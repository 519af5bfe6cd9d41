// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package judge

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// Bits of FuzzClassify's probes argument.
const (
	fzLeaseHeld = 1 << iota
	fzLeaseErr
	fzLockHeld
	fzLockErr
	fzStateErr
	fzStateNil
	fzPolicyStopped
	fzRunnerNil
)

// Bits of FuzzClassify's proc argument.
const (
	fzProcExists = 1 << iota
	fzProcErr
	fzProcZombie
	// The collector's PID namespace: a container's (inode 7), or unknown
	// (/proc untrusted); the host's when neither bit is set.
	fzProcContainerNS
	fzProcUntrusted
	// The record's PID namespace: the host's, or the container's.
	fzProcRecordHostNS
	fzProcRecordContainerNS
	// A process named as the runner has the PID in a nested namespace;
	// the nested namespaces were looked at in any case.
	fzProcNestedRunner
)

// reasonClass is the one class each reason may come with.
var reasonClass = map[Reason]Class{
	ReasonLeaseHeld:            ClassLive,
	ReasonStateLocked:          ClassBusy,
	ReasonProbeFailed:          ClassUnknown,
	ReasonUnreadable:           ClassUnreadable,
	ReasonRunEnded:             ClassOrphan,
	ReasonLeaseLost:            ClassLive,
	ReasonRunnerAmbiguous:      ClassLive,
	ReasonRebooted:             ClassOrphan,
	ReasonRunnerDead:           ClassOrphan,
	ReasonRunnerZombie:         ClassOrphan,
	ReasonPIDReused:            ClassOrphan,
	ReasonRunnerMatches:        ClassLive,
	ReasonIdentityUnreadable:   ClassLive,
	ReasonRunnerOtherNamespace: ClassLive,
	ReasonNoPID:                ClassUnknown,
	ReasonOtherPIDNamespace:    ClassUnknown,
	ReasonPIDNamespaceUnknown:  ClassUnknown,
	ReasonInactive:             ClassStopped,
	ReasonStoppedExpired:       ClassOrphan,
	ReasonLeftover:             ClassOrphan,
	ReasonNoVeto:               ClassUnknown,
}

// fuzzTime maps 0 to the zero time (a field that was never set) and any
// other value to that many nanoseconds since the Unix epoch.
func fuzzTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// FuzzClassify feeds classify facts built from fuzzed PIDs, times, flags,
// boot ids, process identities and raw state files (through state.Parse),
// and checks what must hold whatever the facts: classify never panics and
// is deterministic; the class is one of the six and agrees with the
// reason; a held lease is live, never orphan; a held state lock (lease
// free) is busy; a failed probe or an unreadable state is never orphan; a
// readable state with the marker set and the lease and lock free is orphan
// unless its runner is alive with the exact identity of this boot (then
// live, lease-lost); an inactive state without the marker is stopped
// unless the caller opted in, and reclaimed only once its stopped age is
// reached; an active one with no usable PID is unknown; a wall-clock rule
// alone never makes an orphan of a PID that a live process with the
// runner's name holds.
func FuzzClassify(f *testing.F) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).UnixNano()
	boot := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC).UnixNano()
	hour := int64(time.Hour)
	for _, s := range []struct {
		probes   uint8
		json     string
		useJSON  bool
		flags    uint8
		pid      int64
		pidStart int64
		created  int64
		rStart   uint64
		rBoot    string
		rExe     string
		proc     uint8
		pStart   uint64
		pStarted int64
		comm     string
		exe      string
		bootID   string
		minAge   int64
	}{
		{probes: fzLeaseHeld, flags: 3, pid: 42},
		{probes: fzLockHeld, flags: 3, pid: 42},
		{probes: fzLeaseErr | fzLockHeld, flags: 1},
		{probes: fzLockErr, flags: 3},
		{probes: fzStateErr, flags: 3},
		{probes: fzStateNil},
		{flags: 3, pid: 42, pidStart: now - hour, rStart: 7, rBoot: "b", proc: fzProcExists, pStart: 7},
		{flags: 1, pid: 42, pidStart: now - hour, rStart: 7, rBoot: "a", bootID: "b", proc: fzProcExists, pStart: 7},
		{flags: 1, pid: 42, pidStart: boot - 10*hour, probes: fzRunnerNil, proc: fzProcExists},
		{flags: 1, pid: 42, pidStart: now - hour, probes: fzRunnerNil},
		{flags: 1, pid: 42, pidStart: now - hour, probes: fzRunnerNil, proc: fzProcExists | fzProcZombie},
		{flags: 1, pid: 42, pidStart: now - hour, probes: fzRunnerNil, proc: fzProcExists, pStarted: now - hour/2},
		{flags: 1, pid: 42, pidStart: now - hour, probes: fzRunnerNil, proc: fzProcExists, pStarted: now - 2*hour},
		{flags: 1, pid: 42, probes: fzRunnerNil, proc: fzProcExists, exe: "/usr/bin/go-microvm-runner"},
		{flags: 1, pid: 42, probes: fzRunnerNil, proc: fzProcExists, exe: "/usr/bin/sleep"},
		{flags: 1, pid: 42, probes: fzRunnerNil, proc: fzProcExists, comm: "go-microvm-runn"},
		{flags: 1, pid: 42, probes: fzRunnerNil, proc: fzProcExists, comm: "go-microvm-runn\x00bin/go-microvm-runner", exe: "/opt/go-microvm-runner-0.0.31"},
		{flags: 1, pid: 42, probes: fzRunnerNil, proc: fzProcExists, comm: "sleep\x00go-microvm-runner", exe: "/usr/bin/sleep"},
		{flags: 1, pid: 42, probes: fzRunnerNil, proc: fzProcExists | fzProcErr},
		{flags: 1, pid: 42, rExe: "/opt/custom-runner", proc: fzProcExists, exe: "/opt/custom-runner"},
		{flags: 1, pid: 42, pidStart: now - hour, probes: fzRunnerNil, proc: fzProcNestedRunner},
		{flags: 1, pid: 42, probes: fzRunnerNil, proc: fzProcExists | fzProcNestedRunner, exe: "/usr/bin/sleep"},
		{flags: 1, pid: 0, probes: fzRunnerNil},
		{flags: 1, pid: -1, probes: fzRunnerNil},
		{flags: 1, pid: 1 << 40, probes: fzRunnerNil},
		{flags: 0, pid: 1, probes: fzRunnerNil, created: now - 48*hour},
		{flags: 0, probes: fzRunnerNil | fzPolicyStopped, created: now - 48*hour, minAge: hour},
		{flags: 0, probes: fzRunnerNil | fzPolicyStopped, created: now + hour, minAge: -hour},
		{flags: 3, pid: 42, rStart: 7, rBoot: "b", bootID: "b", proc: fzProcExists, pStart: 7},
		{flags: 3, pid: 42, rStart: 7, rBoot: "b", bootID: "b", proc: fzProcExists | fzProcZombie, pStart: 7},
		{flags: 3, pid: 42, rStart: 7, rBoot: "b", bootID: "b", proc: fzProcExists, pStart: 8},
		{flags: 1, pid: 42, pidStart: boot - 10*hour, probes: fzRunnerNil, proc: fzProcExists, exe: "/usr/bin/go-microvm-runner"},
		{flags: 1, pid: 42, pidStart: boot - 10*hour, probes: fzRunnerNil, proc: fzProcExists, comm: "go-microvm-runn"},
		{flags: 1, pid: 42, pidStart: boot - 10*hour, probes: fzRunnerNil, proc: fzProcExists, exe: "/tmp/gc.test", comm: "go-microvm-runn"},
		{flags: 1, pid: 42, pidStart: now - hour, probes: fzRunnerNil, proc: fzProcExists, pStarted: now - hour/2, exe: "/usr/bin/go-microvm-runner"},
		{flags: 1, pid: 42, pidStart: boot - 10*hour, rStart: 7, rBoot: "b", bootID: "b", proc: fzProcExists, pStart: 7},
		{flags: 1, pid: 42, pidStart: boot - 10*hour, rStart: 7, rBoot: "a", bootID: "b", proc: fzProcExists, pStart: 7, exe: "/usr/bin/go-microvm-runner"},
		{flags: 0, probes: fzRunnerNil | fzPolicyStopped, created: boot - 100*hour, minAge: hour},
		{useJSON: true, json: `{"version":1,"active":true,"leased":true,"pid":42}`},
		{useJSON: true, json: `{"version":1,"active":true,"leased":true,"pid":42,"runner":{"start_time":99,"boot_id":"x"}}`, proc: fzProcExists, pStart: 99, bootID: "x"},
		{useJSON: true, json: `{"version":1,"active":true,"pid":42,"pid_start_time":"0001-01-01T00:00:00Z"}`, proc: fzProcExists, exe: "/bin/sh"},
		{useJSON: true, json: `{"version":1,"active":true,"pid":42,"pid_start_time":"2026-11-29T11:00:00Z","runner":{"start_time":99,"boot_id":"x"}}`, proc: fzProcExists, pStart: 99, bootID: "x"},
		{useJSON: true, json: `{"version":2,"active":true,"leased":true}`},
		{useJSON: true, json: `{"version":1,"active":true,"pid":"12"}`},
		{useJSON: true, json: `null`},
		{useJSON: true, json: `{"version":1,"active":false,"created_at":"2026-11-28T00:00:00Z"}`, probes: fzPolicyStopped, minAge: hour},
		{useJSON: true, json: "{\"version\":1,\"name\":\"\xff\xfe\\n\",\"active\":true,\"pid\":2147483648}"},
	} {
		f.Add(s.probes, []byte(s.json), s.useJSON, s.flags, s.pid, s.pidStart, s.created,
			s.rStart, s.rBoot, s.rExe, s.proc, s.pStart, s.pStarted, s.comm, s.exe,
			s.bootID, boot, now, s.minAge)
	}
	f.Fuzz(func(t *testing.T, probes uint8, stateJSON []byte, useJSON bool, flags uint8,
		pid, pidStart, created int64, rStart uint64, rBoot, rExe string,
		proc uint8, pStart uint64, pStarted int64, comm, exe, bootID string,
		bootTime, now, minAge int64) {
		var facts Facts
		switch {
		case useJSON:
			facts.State, facts.StateErr = state.Parse(stateJSON)
		case probes&fzStateErr != 0:
			facts.StateErr = state.ErrCorrupt
		case probes&fzStateNil != 0:
		default:
			s := &state.State{
				Version:      state.CurrentVersion,
				Active:       flags&1 != 0,
				Leased:       flags&2 != 0,
				PID:          int(pid),
				PIDStartTime: fuzzTime(pidStart),
				CreatedAt:    fuzzTime(created),
			}
			if probes&fzRunnerNil == 0 {
				s.Runner = &state.Identity{StartTime: rStart, BootID: rBoot, Executable: rExe}
			}
			facts.State = s
		}
		facts.LeaseHeld = probes&fzLeaseHeld != 0
		if probes&fzLeaseErr != 0 {
			facts.LeaseErr = errors.New("probe lease: fuzzed failure")
		}
		facts.LockHeld = probes&fzLockHeld != 0
		if probes&fzLockErr != 0 {
			facts.LockErr = errors.New("probe lock: fuzzed failure")
		}
		facts.StateModTime = fuzzTime(created / 2)
		// comm carries argv[0] after a NUL, if any.
		comm, argv0, _ := strings.Cut(comm, "\x00")
		facts.Process = Process{Exists: proc&fzProcExists != 0, Info: procinfo.Info{
			Zombie:     proc&fzProcZombie != 0,
			StartTime:  pStart,
			Started:    fuzzTime(pStarted),
			Comm:       comm,
			Argv0:      argv0,
			Executable: exe,
		}}
		if proc&fzProcErr != 0 {
			facts.Process.Err = errors.New("lookup: fuzzed failure")
		}
		facts.PIDNamespace = procinfo.PIDNamespace{Inode: procinfo.InitialPIDNamespace, Initial: true}
		switch {
		case proc&fzProcUntrusted != 0:
			facts.PIDNamespace, facts.PIDNamespaceErr = procinfo.PIDNamespace{}, procinfo.ErrProcUntrusted
		case proc&fzProcContainerNS != 0:
			facts.PIDNamespace = procinfo.PIDNamespace{Inode: 7}
		}
		if facts.State != nil && facts.State.Runner != nil && !useJSON {
			switch {
			case proc&fzProcRecordHostNS != 0:
				facts.State.Runner.PIDNamespace = procinfo.InitialPIDNamespace
			case proc&fzProcRecordContainerNS != 0:
				facts.State.Runner.PIDNamespace = 7
			}
		}
		facts.Elsewhere = Elsewhere{Looked: true}
		if proc&fzProcNestedRunner != 0 {
			facts.Elsewhere.Procs = []procinfo.Nested{{PID: 9, Info: procinfo.Info{Comm: runnerName}}}
		}
		facts.BootID = bootID
		facts.BootTime = fuzzTime(bootTime)
		facts.Now = fuzzTime(now)
		policy := Policy{Stopped: probes&fzPolicyStopped != 0, StoppedMinAge: time.Duration(minAge)}

		v := Classify(facts, policy)
		class, reason, detail := v.Class, v.Reason, v.Detail
		if v2 := Classify(facts, policy); v2 != v {
			t.Fatalf("not deterministic: %s/%s/%q then %s/%s/%q", class, reason, detail, v2.Class, v2.Reason, v2.Detail)
		}
		want, known := reasonClass[reason]
		if !known {
			t.Fatalf("unknown reason %q (class %q)", reason, class)
		}
		if want != class {
			t.Fatalf("reason %s comes with class %s, got %s", reason, want, class)
		}
		if detail == "" {
			t.Errorf("class %s reason %s with no detail", class, reason)
		}
		if age := facts.Age(); age < 0 {
			t.Errorf("negative age %v", age)
		}

		readable := facts.StateErr == nil && facts.State != nil
		probed := facts.LeaseErr == nil && facts.LockErr == nil
		switch {
		case facts.LeaseHeld:
			if class != ClassLive {
				t.Fatalf("lease held: class %s (%s), want live", class, reason)
			}
		case facts.LeaseErr != nil:
			if class == ClassOrphan {
				t.Fatalf("lease probe failed: class orphan (%s)", reason)
			}
		case facts.LockHeld:
			if class != ClassBusy {
				t.Fatalf("state lock held, lease free: class %s (%s), want busy", class, reason)
			}
		}
		if class == ClassOrphan && (!readable || !probed || facts.LeaseHeld || facts.LockHeld) {
			t.Fatalf("orphan (%s) with lease held %v, lock held %v, lease err %v, lock err %v, state err %v, state %v",
				reason, facts.LeaseHeld, facts.LockHeld, facts.LeaseErr, facts.LockErr, facts.StateErr, facts.State != nil)
		}
		if !readable && class == ClassOrphan {
			t.Fatalf("unreadable state classified orphan (%s)", reason)
		}
		if !readable && probed && !facts.LeaseHeld && !facts.LockHeld && class != ClassUnreadable {
			t.Fatalf("unreadable state (%v): class %s, want unreadable", facts.StateErr, class)
		}
		if !readable || !probed || facts.LeaseHeld || facts.LockHeld {
			return
		}
		s := facts.State
		pr := facts.Process
		var recNS uint64
		if s.Runner != nil {
			recNS = s.Runner.PIDNamespace
		}
		ns := facts.PIDNamespace
		judgeable := facts.PIDNamespaceErr == nil && (recNS == ns.Inode || recNS == 0 && ns.Initial)
		otherBootID := s.Runner != nil && s.Runner.BootID != "" && facts.BootID != "" && s.Runner.BootID != facts.BootID
		if !judgeable && s.Active && !s.Leased && s.PID > 0 && !otherBootID && class == ClassOrphan {
			t.Fatalf("pid %d not judgeable in this namespace, yet orphan (%s: %s)", s.PID, reason, detail)
		}

		alive := pr.Exists && pr.Err == nil && !pr.Zombie
		exactNow := s.Runner != nil && s.Runner.StartTime != 0 && s.Runner.BootID != "" && s.Runner.BootID == facts.BootID
		exactMatch := alive && s.Runner != nil && s.Runner.StartTime != 0 && s.Runner.StartTime == pr.StartTime
		runnerWant := runnerName
		if s.Runner != nil && s.Runner.Executable != "" {
			runnerWant = filepath.Base(s.Runner.Executable)
		}
		// Named as the runner by any of its names: the executable, the
		// comm (cut to 15 bytes or more) or argv[0].
		named := alive && (pr.Executable != "" && filepath.Base(pr.Executable) == runnerWant ||
			pr.Comm != "" && (pr.Comm == runnerWant || len(pr.Comm) >= 15 && strings.HasPrefix(runnerWant, pr.Comm)) ||
			pr.Argv0 != "" && filepath.Base(pr.Argv0) == runnerWant)
		// A record that names no namespace, whose PID a process named as
		// its runner holds in a container, is never reclaimed by the PID
		// rules.
		noNS, nestedRunner := recNS == 0, proc&fzProcNestedRunner != 0 && runnerWant == runnerName
		if noNS && nestedRunner && s.Active && !s.Leased && s.PID > 0 && !otherBootID && class == ClassOrphan {
			t.Fatalf("pid %d of a runner in a container, recorded without its namespace, yet orphan (%s: %s)", s.PID, reason, detail)
		}
		if reason == ReasonRunnerOtherNamespace && (!noNS || proc&fzProcNestedRunner == 0 || s.Leased) {
			t.Fatalf("%s with namespace %d recorded, nested runner %v, marker %v", reason, recNS, proc&fzProcNestedRunner != 0, s.Leased)
		}
		// A process of another name that started by the record's
		// pid_start_time is kept as ambiguous too: only a clock stepped
		// back lets it hold the PID.
		startedBefore := alive && !s.PIDStartTime.IsZero() && !pr.Started.IsZero() && !pr.Started.After(s.PIDStartTime.Add(startSlack))
		if reason == ReasonRunnerAmbiguous && (!named && !startedBefore || exactNow || s.Leased) {
			t.Fatalf("runner-ambiguous with named %v, started by the record %v, exact identity of this boot %v, marker %v", named, startedBefore, exactNow, s.Leased)
		}
		if reason == ReasonLeaseLost && (!s.Leased || !exactNow || !exactMatch || s.PID <= 0) {
			t.Fatalf("lease-lost without the marker and a matching exact identity of this boot")
		}
		if !s.Leased && s.Active && named && !exactNow {
			// Only evidence that is not wall-clock may reclaim a PID the
			// runner's name holds: another recorded boot id, or another
			// kernel start time.
			otherBoot := s.Runner != nil && s.Runner.BootID != "" && facts.BootID != "" && s.Runner.BootID != facts.BootID
			if reason == ReasonRebooted && !otherBoot || reason == ReasonPIDReused && (s.Runner == nil || s.Runner.StartTime == 0) {
				t.Fatalf("wall-clock rule reclaimed a pid held by %s: %s (%s)", runnerWant, reason, detail)
			}
		}
		if reason == ReasonStoppedExpired && facts.StoppedAge() < policy.StoppedMinAge {
			t.Fatalf("stopped-expired at stopped age %s < %s", facts.StoppedAge(), policy.StoppedMinAge)
		}
		switch {
		case s.Leased && s.PID > 0 && exactNow && !judgeable:
			if class != ClassUnknown {
				t.Fatalf("marker set, lease free, pid not judgeable: %s (%s), want unknown", class, reason)
			}
		case s.Leased && s.PID > 0 && exactNow && (pr.Err != nil || pr.Exists && !pr.Zombie && pr.StartTime == 0):
			if class != ClassLive || reason != ReasonIdentityUnreadable {
				t.Fatalf("marker set, lease free, exact runner unreadable: %s (%s), want live (identity-unreadable)", class, reason)
			}
		case s.Leased && s.PID > 0 && exactNow && exactMatch:
			if class != ClassLive || reason != ReasonLeaseLost {
				t.Fatalf("marker set, lease free, exact runner alive: %s (%s), want live (lease-lost)", class, reason)
			}
		case s.Leased:
			if class != ClassOrphan || reason != ReasonRunEnded {
				t.Fatalf("marker set, lease and lock free: %s (%s), want orphan (run-ended)", class, reason)
			}
		case !s.Active && !policy.Stopped:
			if class != ClassStopped {
				t.Fatalf("inactive, no opt-in: %s (%s), want stopped", class, reason)
			}
		case !s.Active:
			if class != ClassStopped && reason != ReasonStoppedExpired {
				t.Fatalf("inactive with opt-in: %s (%s), want stopped or stopped-expired", class, reason)
			}
		case s.PID <= 0:
			if class != ClassUnknown || reason != ReasonNoPID {
				t.Fatalf("active, pid %d: %s (%s), want unknown (no-pid)", s.PID, class, reason)
			}
		case !judgeable && !otherBootID:
			if class != ClassUnknown {
				t.Fatalf("pid %d not judgeable in this namespace: %s (%s), want unknown", s.PID, class, reason)
			}
		case exactMatch && (exactNow || (s.Runner.BootID == "" || facts.BootID == "") &&
			(s.PIDStartTime.IsZero() || facts.BootTime.IsZero() || !s.PIDStartTime.Before(facts.BootTime))):
			// The exact identity matches in this boot: never reclaim a
			// running runner, whatever the wall clock says.
			if class != ClassLive {
				t.Fatalf("recorded start time %d matches the process: %s (%s: %s), want live",
					s.Runner.StartTime, class, reason, detail)
			}
		}
	})
}
