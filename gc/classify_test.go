// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	boot := now.Add(-24 * time.Hour)
	recorded := now.Add(-time.Hour)
	const bootID = "boot-now"

	// active is an active released-format record (no marker, no identity)
	// of pid 4242, recorded an hour ago in this boot.
	active := func(mods ...func(*state.State)) *state.State {
		s := &state.State{Version: 1, Active: true, PID: 4242, PIDStartTime: recorded, CreatedAt: recorded}
		for _, m := range mods {
			m(s)
		}
		return s
	}
	noStart := func(s *state.State) { s.PIDStartTime = time.Time{} }
	marker := func(s *state.State) { s.Leased = true }
	identity := func(start uint64, boot string) func(*state.State) {
		return func(s *state.State) { s.Runner = &state.Identity{StartTime: start, BootID: boot} }
	}
	runner := Process{Exists: true, StartTime: 777, Started: recorded.Add(-100 * time.Millisecond),
		Comm: "go-microvm-runn", Executable: "/usr/libexec/go-microvm-runner"}
	other := Process{Exists: true, StartTime: 999, Started: recorded.Add(10 * time.Minute),
		Comm: "bash", Executable: "/usr/bin/bash"}
	with := func(p Process, mod func(*Process)) Process { mod(&p); return p }
	symlinked := with(runner, func(p *Process) {
		p.Executable, p.Argv0 = "/opt/go-microvm-runner-0.0.31", "bin/go-microvm-runner"
	})
	beforeBoot := func(s *state.State) { s.PIDStartTime = boot.Add(-time.Hour) }
	const hostNS = 0xEFFFFFFC
	inNS := func(ns uint64) func(*state.State) {
		return func(s *state.State) { s.Runner.PIDNamespace = ns }
	}
	container := pidNamespace{Inode: 7}
	untrusted := pidNamespace{Err: errors.New("/proc does not show this process")}
	nested := func(ps ...procinfo.Nested) elsewhere { return elsewhere{Looked: true, Procs: ps} }
	nestedAs := func(p Process) procinfo.Nested {
		return procinfo.Nested{PID: 31337, Comm: p.Comm, Zombie: p.Zombie,
			Info: procinfo.Info{StartTime: p.StartTime, Started: p.Started, Comm: p.Comm, Executable: p.Executable}}
	}
	nestedRunner := nestedAs(runner)
	// notLooked is a look at the nested namespaces that was not made; a
	// zero Elsewhere is taken for a look that found nothing.
	notLooked := elsewhere{Procs: []procinfo.Nested{}}
	stoppedAt := func(created time.Time) *state.State { return &state.State{Version: 1, CreatedAt: created} }

	tests := []struct {
		name   string
		f      dirFacts
		p      reclaimPolicy
		class  Class
		reason Reason
	}{
		// Rows of the design's table, in its order.
		{"lease held", dirFacts{State: active(), LeaseHeld: true}, reclaimPolicy{}, ClassLive, ReasonLeaseHeld},
		{"lease held beats marker", dirFacts{State: active(marker), LeaseHeld: true}, reclaimPolicy{}, ClassLive, ReasonLeaseHeld},
		{"lease held beats unreadable", dirFacts{StateErr: state.ErrCorrupt, LeaseHeld: true}, reclaimPolicy{}, ClassLive, ReasonLeaseHeld},
		{"state lock held", dirFacts{State: active(marker), LockHeld: true}, reclaimPolicy{}, ClassBusy, ReasonStateLocked},
		{"lease probe failed", dirFacts{State: active(marker), LeaseErr: errors.New("EACCES")}, reclaimPolicy{}, ClassUnknown, ReasonProbeFailed},
		{"lock probe failed", dirFacts{State: active(marker), LockErr: errors.New("EACCES")}, reclaimPolicy{}, ClassUnknown, ReasonProbeFailed},
		{"marker and lease free", dirFacts{State: active(marker), Process: runner}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker on inactive", dirFacts{State: &state.State{Version: 1, Leased: true}}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, exact runner alive", dirFacts{State: active(marker, identity(777, bootID)), Process: runner}, reclaimPolicy{}, ClassLive, ReasonLeaseLost},
		{"marker, lease free, exact runner alive, record before boot", dirFacts{State: active(marker, identity(777, bootID), beforeBoot), Process: runner}, reclaimPolicy{}, ClassLive, ReasonLeaseLost},
		{"marker, lease free, other start time", dirFacts{State: active(marker, identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 778 })}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, exact runner zombie", dirFacts{State: active(marker, identity(777, bootID)), Process: with(runner, func(p *Process) { p.Zombie = true })}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, exact runner dead", dirFacts{State: active(marker, identity(777, bootID))}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, lookup failed", dirFacts{State: active(marker, identity(777, bootID)), Process: Process{Exists: true, Err: errors.New("EPERM")}}, reclaimPolicy{}, ClassLive, ReasonIdentityUnreadable},
		{"marker, lease free, other namespace", dirFacts{State: active(marker, identity(777, bootID), inNS(7)), Process: runner}, reclaimPolicy{}, ClassUnknown, ReasonOtherPIDNamespace},
		{"marker, lease free, no trusted proc", dirFacts{State: active(marker, identity(777, bootID), inNS(hostNS)), PIDNamespace: untrusted}, reclaimPolicy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"marker, lease free, other boot", dirFacts{State: active(marker, identity(777, "boot-old")), Process: runner}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, current boot unknown", dirFacts{State: active(marker, identity(777, bootID)), Process: runner, BootID: "-"}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, no recorded boot", dirFacts{State: active(marker, identity(777, "")), Process: runner}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, runner by name only", dirFacts{State: active(marker, identity(0, bootID)), Process: runner}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, exact runner, pid 0", dirFacts{State: active(marker, identity(777, bootID), func(s *state.State) { s.PID = 0 }), Process: runner}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"marker with pid 0", dirFacts{State: active(marker, func(s *state.State) { s.PID = 0 })}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"other boot id", dirFacts{State: active(identity(777, "boot-old")), Process: runner}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time before boot", dirFacts{State: active(beforeBoot), Process: other}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time before boot, no process", dirFacts{State: active(beforeBoot)}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time before boot, zombie runner", dirFacts{State: active(beforeBoot), Process: with(runner, func(p *Process) { p.Zombie = true })}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time before boot, lookup failed", dirFacts{State: active(beforeBoot), Process: Process{Exists: true, Err: errors.New("EPERM")}}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time within boot slack", dirFacts{State: active(func(s *state.State) { s.PIDStartTime = boot.Add(-time.Second) }),
			Process: with(runner, func(p *Process) { p.Started = boot })}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"no process", dirFacts{State: active(), Process: Process{}}, reclaimPolicy{}, ClassOrphan, ReasonRunnerDead},
		{"zombie", dirFacts{State: active(), Process: with(runner, func(p *Process) { p.Zombie = true; p.Executable = "" })}, reclaimPolicy{}, ClassOrphan, ReasonRunnerZombie},
		{"pid reused, started after record", dirFacts{State: active(), Process: other}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		{"pid reused, other start time", dirFacts{State: active(identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 778 })}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		{"pid reused, other executable", dirFacts{State: active(noStart), Process: other}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		{"runner matches by start time", dirFacts{State: active(identity(777, bootID)), Process: runner}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"runner matches by pid_start_time", dirFacts{State: active(), Process: runner}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"runner matches by name", dirFacts{State: active(noStart), Process: runner}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"identity unreadable", dirFacts{State: active(noStart), Process: with(runner, func(p *Process) { p.Executable, p.Comm = "", "" })}, reclaimPolicy{}, ClassLive, ReasonIdentityUnreadable},
		{"lookup failed", dirFacts{State: active(), Process: Process{Exists: true, Err: errors.New("EPERM")}}, reclaimPolicy{}, ClassLive, ReasonIdentityUnreadable},
		{"active without pid", dirFacts{State: active(func(s *state.State) { s.PID = 0 })}, reclaimPolicy{}, ClassUnknown, ReasonNoPID},
		{"active with negative pid", dirFacts{State: active(func(s *state.State) { s.PID = -3 })}, reclaimPolicy{}, ClassUnknown, ReasonNoPID},
		{"inactive", dirFacts{State: &state.State{Version: 1, CreatedAt: recorded}}, reclaimPolicy{}, ClassStopped, ReasonInactive},
		{"inactive with stale pid", dirFacts{State: &state.State{Version: 1, PID: 4242, CreatedAt: recorded}}, reclaimPolicy{}, ClassStopped, ReasonInactive},
		{"inactive, opted in, old enough", dirFacts{State: &state.State{Version: 1, CreatedAt: recorded}}, reclaimPolicy{Stopped: true, StoppedMinAge: 30 * time.Minute}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, opted in, too young", dirFacts{State: &state.State{Version: 1, CreatedAt: recorded}}, reclaimPolicy{Stopped: true, StoppedMinAge: 2 * time.Hour}, ClassStopped, ReasonInactive},
		{"inactive, age from mtime", dirFacts{State: &state.State{Version: 1}, StateModTime: now.Add(-3 * time.Hour)}, reclaimPolicy{Stopped: true, StoppedMinAge: 2 * time.Hour}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, created long ago, stopped just now", dirFacts{State: stoppedAt(now.Add(-30 * 24 * time.Hour)), StateModTime: now.Add(-time.Minute)}, reclaimPolicy{Stopped: true, StoppedMinAge: 24 * time.Hour}, ClassStopped, ReasonInactive},
		{"inactive, created long ago, stopped long ago", dirFacts{State: stoppedAt(now.Add(-30 * 24 * time.Hour)), StateModTime: now.Add(-25 * time.Hour)}, reclaimPolicy{Stopped: true, StoppedMinAge: 24 * time.Hour}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, mtime older than created_at", dirFacts{State: stoppedAt(now.Add(-time.Hour)), StateModTime: now.Add(-30 * 24 * time.Hour)}, reclaimPolicy{Stopped: true, StoppedMinAge: 24 * time.Hour}, ClassStopped, ReasonInactive},
		{"inactive, mtime unknown", dirFacts{State: stoppedAt(now.Add(-25 * time.Hour))}, reclaimPolicy{Stopped: true, StoppedMinAge: 24 * time.Hour}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, mtime in the future", dirFacts{State: stoppedAt(now.Add(-30 * 24 * time.Hour)), StateModTime: now.Add(time.Hour)}, reclaimPolicy{Stopped: true, StoppedMinAge: time.Minute}, ClassStopped, ReasonInactive},
		{"inactive, created in the future, min age 0", dirFacts{State: &state.State{Version: 1, CreatedAt: now.Add(time.Hour)}}, reclaimPolicy{Stopped: true}, ClassOrphan, ReasonStoppedExpired},
		{"not regular", dirFacts{StateErr: fmt.Errorf("read: %w", state.ErrNotRegular)}, reclaimPolicy{}, ClassUnreadable, ReasonUnreadable},
		{"too large", dirFacts{StateErr: state.ErrTooLarge}, reclaimPolicy{}, ClassUnreadable, ReasonUnreadable},
		{"bad json", dirFacts{StateErr: state.ErrCorrupt}, reclaimPolicy{}, ClassUnreadable, ReasonUnreadable},
		{"newer version", dirFacts{StateErr: state.ErrNewerVersion}, reclaimPolicy{}, ClassUnreadable, ReasonUnreadable},
		{"no state at all", dirFacts{}, reclaimPolicy{}, ClassUnreadable, ReasonUnreadable},

		// An embedder's leftovers: its veto decides, a flock keeps them.
		{"leftover, no veto", dirFacts{Leftover: true}, reclaimPolicy{Stopped: true}, ClassUnknown, ReasonNoVeto},
		{"leftover, veto", dirFacts{Leftover: true}, reclaimPolicy{Veto: true}, ClassOrphan, ReasonLeftover},
		{"leftover flocked", dirFacts{Leftover: true, LeaseHeld: true}, reclaimPolicy{Veto: true}, ClassLive, ReasonLeaseHeld},
		{"leftover flock unprobed", dirFacts{Leftover: true, LeaseErr: errors.New("EIO")}, reclaimPolicy{Veto: true}, ClassUnknown, ReasonProbeFailed},

		// Identity precedence: the strongest evidence present decides alone.
		{"start time beats name", dirFacts{State: active(identity(777, bootID)), Process: with(other, func(p *Process) { p.StartTime = 777 })}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"start time beats pid_start_time", dirFacts{State: active(identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 1 })}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		{"start time with unknown current boot", dirFacts{State: active(identity(777, bootID)), Process: runner, BootID: "-"}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"start time unreadable", dirFacts{State: active(identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 0 })}, reclaimPolicy{}, ClassLive, ReasonIdentityUnreadable},
		// Kept whatever its name, but confirmed only with the runner's
		// name: a clock stepped back may show a reused PID as older.
		{"pid_start_time beats name", dirFacts{State: active(), Process: with(other, func(p *Process) { p.Started = recorded.Add(-time.Minute) })}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"pid_start_time beats comm", dirFacts{State: active(), Process: with(other, func(p *Process) { p.Started, p.Executable = recorded.Add(-time.Minute), "" })}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"pid_start_time before, runner", dirFacts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(-time.Minute) })}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"pid_start_time before, name unreadable", dirFacts{State: active(), Process: with(other, func(p *Process) { p.Started, p.Executable, p.Comm = recorded.Add(-time.Minute), "", "" })}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"pid_start_time within slack", dirFacts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(time.Second) })}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"pid_start_time beyond slack", dirFacts{State: active(), Process: with(other, func(p *Process) { p.Started = recorded.Add(3 * time.Second) })}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		{"pid_start_time beyond slack, runner", dirFacts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(3 * time.Second) })}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"pid_start_time, start unreadable", dirFacts{State: active(), Process: with(runner, func(p *Process) { p.Started = time.Time{} })}, reclaimPolicy{}, ClassLive, ReasonIdentityUnreadable},
		{"name from comm when exe unreadable", dirFacts{State: active(noStart), Process: with(runner, func(p *Process) { p.Executable = "" })}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"comm mismatch when exe unreadable", dirFacts{State: active(noStart), Process: with(other, func(p *Process) { p.Executable = "" })}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		{"recorded executable name", dirFacts{State: active(noStart, func(s *state.State) { s.Runner = &state.Identity{Executable: "/opt/x/my-runner"} }),
			Process: with(other, func(p *Process) { p.Executable = "/opt/y/my-runner" })}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		// What the process was started as: a runner exec'd through a
		// symlink to a versioned file runs that file, named as the link.
		{"started through a symlink", dirFacts{State: active(noStart), Process: symlinked}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"started through a symlink, exe unreadable", dirFacts{State: active(noStart), Process: with(symlinked, func(p *Process) { p.Executable = "" })}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"started through a symlink, pid_start_time before", dirFacts{State: active(), Process: symlinked}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"started through a symlink, clock says reused", dirFacts{State: active(), Process: with(symlinked, func(p *Process) { p.Started = recorded.Add(time.Hour) })}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"argv0 alone says runner", dirFacts{State: active(noStart), Process: with(other, func(p *Process) { p.Argv0 = "/usr/bin/go-microvm-runner" })}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"argv0 only known", dirFacts{State: active(noStart), Process: Process{Exists: true, Argv0: "go-microvm-runner"}}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"exe says runner, comm renamed", dirFacts{State: active(noStart), Process: with(runner, func(p *Process) { p.Comm = "vcpu0" })}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"macOS comm of 16 bytes", dirFacts{State: active(noStart), Process: Process{Exists: true, Comm: "go-microvm-runne"}}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"no name says runner", dirFacts{State: active(noStart), Process: with(other, func(p *Process) { p.Argv0 = "-bash" })}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		{"own pid is not the runner", dirFacts{State: active(noStart), Process: with(other, func(p *Process) { p.Executable = "/tmp/gc.test" })}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		// A stepped clock: a wall-clock rule alone never reclaims a PID that
		// a go-microvm-runner holds.
		{"clock says rebooted, runner holds pid", dirFacts{State: active(beforeBoot), Process: runner}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says rebooted, runner by comm", dirFacts{State: active(beforeBoot), Process: with(runner, func(p *Process) { p.Executable = "" })}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says rebooted, other comm", dirFacts{State: active(beforeBoot), Process: with(other, func(p *Process) { p.Executable = "" })}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"clock says rebooted, test binary", dirFacts{State: active(beforeBoot), Process: with(other, func(p *Process) { p.Executable = "/tmp/gc.test" })}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"clock says rebooted, comm says runner, exe not", dirFacts{State: active(beforeBoot), Process: with(runner, func(p *Process) { p.Executable = "/usr/bin/sleep" })}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says rebooted, no name says runner", dirFacts{State: active(beforeBoot), Process: with(other, func(p *Process) { p.Argv0 = "sleep" })}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"clock says rebooted, exact identity decides", dirFacts{State: active(beforeBoot, identity(777, bootID)), Process: runner}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"clock says rebooted, exact identity, other start", dirFacts{State: active(beforeBoot, identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 778 })}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		{"boot id differs, runner holds pid", dirFacts{State: active(identity(777, "boot-old")), Process: runner}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"clock says reused, runner holds pid", dirFacts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(time.Hour) })}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says reused, runner by comm", dirFacts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(time.Hour); p.Executable = "" })}, reclaimPolicy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says reused, zombie runner", dirFacts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(time.Hour); p.Zombie = true })}, reclaimPolicy{}, ClassOrphan, ReasonRunnerZombie},
		{"clock says reused, no process", dirFacts{State: active()}, reclaimPolicy{}, ClassOrphan, ReasonRunnerDead},
		{"clock says reused, test binary", dirFacts{State: active(), Process: with(other, func(p *Process) { p.Executable = "/tmp/gc.test" })}, reclaimPolicy{}, ClassOrphan, ReasonPIDReused},
		// PIDs are judged only in the PID namespace they were recorded in.
		{"recorded namespace is ours", dirFacts{State: active(identity(777, bootID), inNS(hostNS))}, reclaimPolicy{}, ClassOrphan, ReasonRunnerDead},
		{"recorded namespace is ours, in a container", dirFacts{State: active(identity(777, bootID), inNS(7)), PIDNamespace: container}, reclaimPolicy{}, ClassOrphan, ReasonRunnerDead},
		{"recorded in another namespace", dirFacts{State: active(identity(777, bootID), inNS(7))}, reclaimPolicy{}, ClassUnknown, ReasonOtherPIDNamespace},
		{"recorded in the host's, collector in a container", dirFacts{State: active(identity(777, bootID), inNS(hostNS)), PIDNamespace: container}, reclaimPolicy{}, ClassUnknown, ReasonOtherPIDNamespace},
		{"released record, collector in a container", dirFacts{State: active(), PIDNamespace: container}, reclaimPolicy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"released record, clock says rebooted, collector in a container", dirFacts{State: active(beforeBoot), PIDNamespace: container}, reclaimPolicy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"released record, no trusted proc", dirFacts{State: active(), PIDNamespace: untrusted}, reclaimPolicy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"own record, no trusted proc", dirFacts{State: active(identity(777, bootID), inNS(hostNS)), PIDNamespace: untrusted}, reclaimPolicy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"boot id differs, other namespace", dirFacts{State: active(identity(777, "boot-old"), inNS(7)), PIDNamespace: untrusted}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		// A record that names no namespace may be a container's: what the
		// host's PID rules would reclaim waits for the nested namespaces.
		{"released, dead here, runner in a container", dirFacts{State: active(), Elsewhere: nested(nestedRunner)}, reclaimPolicy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, reused here, runner in a container", dirFacts{State: active(noStart), Process: other, Elsewhere: nested(nestedRunner)}, reclaimPolicy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, zombie here, runner in a container", dirFacts{State: active(), Process: with(runner, func(p *Process) { p.Zombie = true }), Elsewhere: nested(nestedRunner)}, reclaimPolicy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, clock says rebooted, runner in a container", dirFacts{State: active(beforeBoot), Elsewhere: nested(nestedRunner)}, reclaimPolicy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, dead here, other process in a container", dirFacts{State: active(), Elsewhere: nested(nestedAs(other))}, reclaimPolicy{}, ClassOrphan, ReasonRunnerDead},
		{"released, dead here, zombie runner in a container", dirFacts{State: active(), Elsewhere: nested(nestedAs(with(runner, func(p *Process) { p.Zombie = true })))}, reclaimPolicy{}, ClassOrphan, ReasonRunnerDead},
		// As it would be here: a process started before the record, of
		// another name (a runner binary renamed), may be the runner.
		{"released, dead here, runner of another name in a container", dirFacts{State: active(), Elsewhere: nested(nestedAs(with(runner, func(p *Process) { p.Comm, p.Executable = "vmm", "/opt/vmm" })))}, reclaimPolicy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, dead here, unreadable process in a container", dirFacts{State: active(), Elsewhere: nested(procinfo.Nested{PID: 9, Comm: "bash", Err: errors.New("EACCES")})}, reclaimPolicy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, dead here, long-lived process of another name in a container", dirFacts{State: active(), Elsewhere: nested(nestedAs(with(runner, func(p *Process) {
			p.Comm, p.Executable, p.Started = "bash", "/usr/bin/bash", recorded.Add(-time.Hour)
		})))}, reclaimPolicy{}, ClassOrphan, ReasonRunnerDead},
		{"own, no namespace recorded, dead, process of another name with its start time in a container", dirFacts{State: active(identity(777, bootID)), Elsewhere: nested(nestedAs(with(runner, func(p *Process) { p.Comm, p.Executable = "vmm", "/opt/vmm" })))}, reclaimPolicy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"own, no namespace recorded, dead, process of another name in a container", dirFacts{State: active(identity(555, bootID)), Elsewhere: nested(nestedAs(with(runner, func(p *Process) { p.Comm, p.Executable = "vmm", "/opt/vmm" })))}, reclaimPolicy{}, ClassOrphan, ReasonRunnerDead},
		{"released, dead here, no container sees every process", dirFacts{State: active(), Elsewhere: elsewhere{Looked: true, Err: errors.New("hidepid")}}, reclaimPolicy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"released, dead here, containers not looked at", dirFacts{State: active(), Elsewhere: notLooked}, reclaimPolicy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"released, runner here, containers not looked at", dirFacts{State: active(), Process: runner, Elsewhere: notLooked}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
		{"own namespace recorded, dead, runner in a container", dirFacts{State: active(identity(777, bootID), inNS(hostNS)), Elsewhere: nested(nestedRunner)}, reclaimPolicy{}, ClassOrphan, ReasonRunnerDead},
		{"own, no namespace recorded, dead, runner in a container", dirFacts{State: active(identity(777, bootID)), Elsewhere: nested(nestedRunner)}, reclaimPolicy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"marker, runner in a container", dirFacts{State: active(marker), Elsewhere: nested(nestedRunner)}, reclaimPolicy{}, ClassOrphan, ReasonRunEnded},
		{"other boot id, runner in a container", dirFacts{State: active(identity(777, "boot-old")), Elsewhere: nested(nestedRunner)}, reclaimPolicy{}, ClassOrphan, ReasonRebooted},
		{"hidden process", dirFacts{State: active(), Process: Process{Exists: true, Err: errors.New("process exists but /proc does not show it")}}, reclaimPolicy{}, ClassLive, ReasonIdentityUnreadable},
		{"unknown boot facts are not evidence", dirFacts{State: active(), Process: runner, BootID: "-", BootTime: time.Time{}}, reclaimPolicy{}, ClassLive, ReasonRunnerMatches},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			f.Now = now
			switch f.BootID {
			case "":
				f.BootID = bootID
			case "-":
				f.BootID = ""
			}
			if f.BootTime.IsZero() && tt.f.BootID != "-" {
				f.BootTime = boot
			}
			if f.PIDNamespace == (pidNamespace{}) {
				f.PIDNamespace = pidNamespace{Inode: hostNS, Initial: true}
			}
			if !f.Elsewhere.Looked && f.Elsewhere.Procs == nil {
				f.Elsewhere.Looked = true
			}
			v := classify(f, tt.p)
			class, reason, detail := v.Class, v.Reason, v.Detail
			if class != tt.class || reason != tt.reason {
				t.Errorf("classify = %s/%s (%s), want %s/%s", class, reason, detail, tt.class, tt.reason)
			}
			if detail == "" {
				t.Errorf("classify gave no detail")
			}
		})
	}
}

func TestFactsAge(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		f    dirFacts
		want time.Duration
	}{
		{"created_at", dirFacts{State: &state.State{CreatedAt: now.Add(-time.Hour)}, StateModTime: now.Add(-time.Minute)}, time.Hour},
		{"mtime when created_at unset", dirFacts{State: &state.State{}, StateModTime: now.Add(-time.Minute)}, time.Minute},
		{"future is zero", dirFacts{State: &state.State{CreatedAt: now.Add(time.Hour)}}, 0},
		{"nothing known", dirFacts{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.Now = now
			if got := tt.f.Age(); got != tt.want {
				t.Errorf("Age = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestFactsStoppedAge(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	month := 30 * 24 * time.Hour
	tests := []struct {
		name string
		f    dirFacts
		want time.Duration
	}{
		{"stopped after creation", dirFacts{State: &state.State{CreatedAt: now.Add(-month)}, StateModTime: now.Add(-time.Minute)}, time.Minute},
		{"mtime before created_at", dirFacts{State: &state.State{CreatedAt: now.Add(-time.Hour)}, StateModTime: now.Add(-month)}, time.Hour},
		{"created_at only", dirFacts{State: &state.State{CreatedAt: now.Add(-time.Hour)}}, time.Hour},
		{"mtime only", dirFacts{State: &state.State{}, StateModTime: now.Add(-time.Minute)}, time.Minute},
		{"created_at in the future", dirFacts{State: &state.State{CreatedAt: now.Add(month)}, StateModTime: now.Add(-time.Hour)}, time.Hour},
		{"created_at in the future only", dirFacts{State: &state.State{CreatedAt: now.Add(month)}}, 0},
		{"future is zero", dirFacts{State: &state.State{CreatedAt: now.Add(-month)}, StateModTime: now.Add(time.Hour)}, 0},
		{"no state, mtime", dirFacts{StateModTime: now.Add(-time.Minute)}, time.Minute},
		{"nothing known", dirFacts{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.Now = now
			if got := tt.f.StoppedAge(); got != tt.want {
				t.Errorf("StoppedAge = %s, want %s", got, tt.want)
			}
		})
	}
}
