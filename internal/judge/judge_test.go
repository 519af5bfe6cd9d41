// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package judge

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
	runner := Process{Exists: true, Info: procinfo.Info{StartTime: 777, Started: recorded.Add(-100 * time.Millisecond),
		Comm: "go-microvm-runn", Executable: "/usr/libexec/go-microvm-runner"}}
	other := Process{Exists: true, Info: procinfo.Info{StartTime: 999, Started: recorded.Add(10 * time.Minute),
		Comm: "bash", Executable: "/usr/bin/bash"}}
	with := func(p Process, mod func(*Process)) Process { mod(&p); return p }
	symlinked := with(runner, func(p *Process) {
		p.Executable, p.Argv0 = "/opt/go-microvm-runner-0.0.31", "bin/go-microvm-runner"
	})
	beforeBoot := func(s *state.State) { s.PIDStartTime = boot.Add(-time.Hour) }
	const hostNS = 0xEFFFFFFC
	inNS := func(ns uint64) func(*state.State) {
		return func(s *state.State) { s.Runner.PIDNamespace = ns }
	}
	container := procinfo.PIDNamespace{Inode: 7}
	untrusted := errors.New("/proc does not show this process")
	nested := func(ps ...procinfo.Nested) Elsewhere { return Elsewhere{Looked: true, Procs: ps} }
	nestedAs := func(p Process) procinfo.Nested {
		return procinfo.Nested{PID: 31337,
			Info: procinfo.Info{StartTime: p.StartTime, Started: p.Started, Comm: p.Comm, Executable: p.Executable, Zombie: p.Zombie}}
	}
	nestedRunner := nestedAs(runner)
	// notLooked is a look at the nested namespaces that was not made; a
	// zero Elsewhere is taken for a look that found nothing.
	notLooked := Elsewhere{Procs: []procinfo.Nested{}}
	stoppedAt := func(created time.Time) *state.State { return &state.State{Version: 1, CreatedAt: created} }

	tests := []struct {
		name   string
		f      Facts
		p      Policy
		class  Class
		reason Reason
	}{
		// Rows of the design's table, in its order.
		{"lease held", Facts{State: active(), LeaseHeld: true}, Policy{}, ClassLive, ReasonLeaseHeld},
		{"lease held beats marker", Facts{State: active(marker), LeaseHeld: true}, Policy{}, ClassLive, ReasonLeaseHeld},
		{"lease held beats unreadable", Facts{StateErr: state.ErrCorrupt, LeaseHeld: true}, Policy{}, ClassLive, ReasonLeaseHeld},
		{"state lock held", Facts{State: active(marker), LockHeld: true}, Policy{}, ClassBusy, ReasonStateLocked},
		{"lease probe failed", Facts{State: active(marker), LeaseErr: errors.New("EACCES")}, Policy{}, ClassUnknown, ReasonProbeFailed},
		{"lock probe failed", Facts{State: active(marker), LockErr: errors.New("EACCES")}, Policy{}, ClassUnknown, ReasonProbeFailed},
		{"marker and lease free", Facts{State: active(marker), Process: runner}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker on inactive", Facts{State: &state.State{Version: 1, Leased: true}}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, exact runner alive", Facts{State: active(marker, identity(777, bootID)), Process: runner}, Policy{}, ClassLive, ReasonLeaseLost},
		{"marker, lease free, exact runner alive, record before boot", Facts{State: active(marker, identity(777, bootID), beforeBoot), Process: runner}, Policy{}, ClassLive, ReasonLeaseLost},
		{"marker, lease free, other start time", Facts{State: active(marker, identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 778 })}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, exact runner zombie", Facts{State: active(marker, identity(777, bootID)), Process: with(runner, func(p *Process) { p.Zombie = true })}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, exact runner dead", Facts{State: active(marker, identity(777, bootID))}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, lookup failed", Facts{State: active(marker, identity(777, bootID)), Process: Process{Exists: true, Err: errors.New("EPERM")}}, Policy{}, ClassLive, ReasonIdentityUnreadable},
		{"marker, lease free, other namespace", Facts{State: active(marker, identity(777, bootID), inNS(7)), Process: runner}, Policy{}, ClassUnknown, ReasonOtherPIDNamespace},
		{"marker, lease free, no trusted proc", Facts{State: active(marker, identity(777, bootID), inNS(hostNS)), PIDNamespaceErr: untrusted}, Policy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"marker, lease free, other boot", Facts{State: active(marker, identity(777, "boot-old")), Process: runner}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, current boot unknown", Facts{State: active(marker, identity(777, bootID)), Process: runner, BootID: "-"}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, no recorded boot", Facts{State: active(marker, identity(777, "")), Process: runner}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, runner by name only", Facts{State: active(marker, identity(0, bootID)), Process: runner}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker, lease free, exact runner, pid 0", Facts{State: active(marker, identity(777, bootID), func(s *state.State) { s.PID = 0 }), Process: runner}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"marker with pid 0", Facts{State: active(marker, func(s *state.State) { s.PID = 0 })}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"other boot id", Facts{State: active(identity(777, "boot-old")), Process: runner}, Policy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time before boot", Facts{State: active(beforeBoot), Process: other}, Policy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time before boot, no process", Facts{State: active(beforeBoot)}, Policy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time before boot, zombie runner", Facts{State: active(beforeBoot), Process: with(runner, func(p *Process) { p.Zombie = true })}, Policy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time before boot, lookup failed", Facts{State: active(beforeBoot), Process: Process{Exists: true, Err: errors.New("EPERM")}}, Policy{}, ClassOrphan, ReasonRebooted},
		{"pid_start_time within boot slack", Facts{State: active(func(s *state.State) { s.PIDStartTime = boot.Add(-time.Second) }),
			Process: with(runner, func(p *Process) { p.Started = boot })}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"no process", Facts{State: active(), Process: Process{}}, Policy{}, ClassOrphan, ReasonRunnerDead},
		{"zombie", Facts{State: active(), Process: with(runner, func(p *Process) { p.Zombie = true; p.Executable = "" })}, Policy{}, ClassOrphan, ReasonRunnerZombie},
		{"pid reused, started after record", Facts{State: active(), Process: other}, Policy{}, ClassOrphan, ReasonPIDReused},
		{"pid reused, other start time", Facts{State: active(identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 778 })}, Policy{}, ClassOrphan, ReasonPIDReused},
		{"pid reused, other executable", Facts{State: active(noStart), Process: other}, Policy{}, ClassOrphan, ReasonPIDReused},
		{"runner matches by start time", Facts{State: active(identity(777, bootID)), Process: runner}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"runner matches by pid_start_time", Facts{State: active(), Process: runner}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"runner matches by name", Facts{State: active(noStart), Process: runner}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"identity unreadable", Facts{State: active(noStart), Process: with(runner, func(p *Process) { p.Executable, p.Comm = "", "" })}, Policy{}, ClassLive, ReasonIdentityUnreadable},
		{"lookup failed", Facts{State: active(), Process: Process{Exists: true, Err: errors.New("EPERM")}}, Policy{}, ClassLive, ReasonIdentityUnreadable},
		{"active without pid", Facts{State: active(func(s *state.State) { s.PID = 0 })}, Policy{}, ClassUnknown, ReasonNoPID},
		{"active with negative pid", Facts{State: active(func(s *state.State) { s.PID = -3 })}, Policy{}, ClassUnknown, ReasonNoPID},
		{"inactive", Facts{State: &state.State{Version: 1, CreatedAt: recorded}}, Policy{}, ClassStopped, ReasonInactive},
		{"inactive with stale pid", Facts{State: &state.State{Version: 1, PID: 4242, CreatedAt: recorded}}, Policy{}, ClassStopped, ReasonInactive},
		{"inactive, opted in, old enough", Facts{State: &state.State{Version: 1, CreatedAt: recorded}}, Policy{Stopped: true, StoppedMinAge: 30 * time.Minute}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, opted in, too young", Facts{State: &state.State{Version: 1, CreatedAt: recorded}}, Policy{Stopped: true, StoppedMinAge: 2 * time.Hour}, ClassStopped, ReasonInactive},
		{"inactive, age from mtime", Facts{State: &state.State{Version: 1}, StateModTime: now.Add(-3 * time.Hour)}, Policy{Stopped: true, StoppedMinAge: 2 * time.Hour}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, created long ago, stopped just now", Facts{State: stoppedAt(now.Add(-30 * 24 * time.Hour)), StateModTime: now.Add(-time.Minute)}, Policy{Stopped: true, StoppedMinAge: 24 * time.Hour}, ClassStopped, ReasonInactive},
		{"inactive, created long ago, stopped long ago", Facts{State: stoppedAt(now.Add(-30 * 24 * time.Hour)), StateModTime: now.Add(-25 * time.Hour)}, Policy{Stopped: true, StoppedMinAge: 24 * time.Hour}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, mtime older than created_at", Facts{State: stoppedAt(now.Add(-time.Hour)), StateModTime: now.Add(-30 * 24 * time.Hour)}, Policy{Stopped: true, StoppedMinAge: 24 * time.Hour}, ClassStopped, ReasonInactive},
		{"inactive, mtime unknown", Facts{State: stoppedAt(now.Add(-25 * time.Hour))}, Policy{Stopped: true, StoppedMinAge: 24 * time.Hour}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, mtime in the future", Facts{State: stoppedAt(now.Add(-30 * 24 * time.Hour)), StateModTime: now.Add(time.Hour)}, Policy{Stopped: true, StoppedMinAge: time.Minute}, ClassStopped, ReasonInactive},
		{"inactive, created in the future, min age 0", Facts{State: &state.State{Version: 1, CreatedAt: now.Add(time.Hour)}}, Policy{Stopped: true}, ClassOrphan, ReasonStoppedExpired},
		{"not regular", Facts{StateErr: fmt.Errorf("read: %w", state.ErrNotRegular)}, Policy{}, ClassUnreadable, ReasonUnreadable},
		{"too large", Facts{StateErr: state.ErrTooLarge}, Policy{}, ClassUnreadable, ReasonUnreadable},
		{"bad json", Facts{StateErr: state.ErrCorrupt}, Policy{}, ClassUnreadable, ReasonUnreadable},
		{"newer version", Facts{StateErr: state.ErrNewerVersion}, Policy{}, ClassUnreadable, ReasonUnreadable},
		{"no state at all", Facts{}, Policy{}, ClassUnreadable, ReasonUnreadable},

		// An embedder's leftovers: its veto decides, a flock keeps them.
		{"leftover, no veto", Facts{Leftover: true}, Policy{Stopped: true}, ClassUnknown, ReasonNoVeto},
		{"leftover, veto", Facts{Leftover: true}, Policy{Veto: true}, ClassOrphan, ReasonLeftover},
		{"leftover flocked", Facts{Leftover: true, LeaseHeld: true}, Policy{Veto: true}, ClassLive, ReasonLeaseHeld},
		{"leftover flock unprobed", Facts{Leftover: true, LeaseErr: errors.New("EIO")}, Policy{Veto: true}, ClassUnknown, ReasonProbeFailed},

		// Identity precedence: the strongest evidence present decides alone.
		{"start time beats name", Facts{State: active(identity(777, bootID)), Process: with(other, func(p *Process) { p.StartTime = 777 })}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"start time beats pid_start_time", Facts{State: active(identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 1 })}, Policy{}, ClassOrphan, ReasonPIDReused},
		{"start time with unknown current boot", Facts{State: active(identity(777, bootID)), Process: runner, BootID: "-"}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"start time unreadable", Facts{State: active(identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 0 })}, Policy{}, ClassLive, ReasonIdentityUnreadable},
		// Kept whatever its name, but confirmed only with the runner's
		// name: a clock stepped back may show a reused PID as older.
		{"pid_start_time beats name", Facts{State: active(), Process: with(other, func(p *Process) { p.Started = recorded.Add(-time.Minute) })}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"pid_start_time beats comm", Facts{State: active(), Process: with(other, func(p *Process) { p.Started, p.Executable = recorded.Add(-time.Minute), "" })}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"pid_start_time before, runner", Facts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(-time.Minute) })}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"pid_start_time before, name unreadable", Facts{State: active(), Process: with(other, func(p *Process) { p.Started, p.Executable, p.Comm = recorded.Add(-time.Minute), "", "" })}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"pid_start_time within slack", Facts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(time.Second) })}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"pid_start_time beyond slack", Facts{State: active(), Process: with(other, func(p *Process) { p.Started = recorded.Add(3 * time.Second) })}, Policy{}, ClassOrphan, ReasonPIDReused},
		{"pid_start_time beyond slack, runner", Facts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(3 * time.Second) })}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"pid_start_time, start unreadable", Facts{State: active(), Process: with(runner, func(p *Process) { p.Started = time.Time{} })}, Policy{}, ClassLive, ReasonIdentityUnreadable},
		{"name from comm when exe unreadable", Facts{State: active(noStart), Process: with(runner, func(p *Process) { p.Executable = "" })}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"comm mismatch when exe unreadable", Facts{State: active(noStart), Process: with(other, func(p *Process) { p.Executable = "" })}, Policy{}, ClassOrphan, ReasonPIDReused},
		{"recorded executable name", Facts{State: active(noStart, func(s *state.State) { s.Runner = &state.Identity{Executable: "/opt/x/my-runner"} }),
			Process: with(other, func(p *Process) { p.Executable = "/opt/y/my-runner" })}, Policy{}, ClassLive, ReasonRunnerMatches},
		// What the process was started as: a runner exec'd through a
		// symlink to a versioned file runs that file, named as the link.
		{"started through a symlink", Facts{State: active(noStart), Process: symlinked}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"started through a symlink, exe unreadable", Facts{State: active(noStart), Process: with(symlinked, func(p *Process) { p.Executable = "" })}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"started through a symlink, pid_start_time before", Facts{State: active(), Process: symlinked}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"started through a symlink, clock says reused", Facts{State: active(), Process: with(symlinked, func(p *Process) { p.Started = recorded.Add(time.Hour) })}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"argv0 alone says runner", Facts{State: active(noStart), Process: with(other, func(p *Process) { p.Argv0 = "/usr/bin/go-microvm-runner" })}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"argv0 only known", Facts{State: active(noStart), Process: Process{Exists: true, Info: procinfo.Info{Argv0: "go-microvm-runner"}}}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"exe says runner, comm renamed", Facts{State: active(noStart), Process: with(runner, func(p *Process) { p.Comm = "vcpu0" })}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"macOS comm of 16 bytes", Facts{State: active(noStart), Process: Process{Exists: true, Info: procinfo.Info{Comm: "go-microvm-runne"}}}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"no name says runner", Facts{State: active(noStart), Process: with(other, func(p *Process) { p.Argv0 = "-bash" })}, Policy{}, ClassOrphan, ReasonPIDReused},
		{"own pid is not the runner", Facts{State: active(noStart), Process: with(other, func(p *Process) { p.Executable = "/tmp/gc.test" })}, Policy{}, ClassOrphan, ReasonPIDReused},
		// A stepped clock: a wall-clock rule alone never reclaims a PID that
		// a go-microvm-runner holds.
		{"clock says rebooted, runner holds pid", Facts{State: active(beforeBoot), Process: runner}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says rebooted, runner by comm", Facts{State: active(beforeBoot), Process: with(runner, func(p *Process) { p.Executable = "" })}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says rebooted, other comm", Facts{State: active(beforeBoot), Process: with(other, func(p *Process) { p.Executable = "" })}, Policy{}, ClassOrphan, ReasonRebooted},
		{"clock says rebooted, test binary", Facts{State: active(beforeBoot), Process: with(other, func(p *Process) { p.Executable = "/tmp/gc.test" })}, Policy{}, ClassOrphan, ReasonRebooted},
		{"clock says rebooted, comm says runner, exe not", Facts{State: active(beforeBoot), Process: with(runner, func(p *Process) { p.Executable = "/usr/bin/sleep" })}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says rebooted, no name says runner", Facts{State: active(beforeBoot), Process: with(other, func(p *Process) { p.Argv0 = "sleep" })}, Policy{}, ClassOrphan, ReasonRebooted},
		{"clock says rebooted, exact identity decides", Facts{State: active(beforeBoot, identity(777, bootID)), Process: runner}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"clock says rebooted, exact identity, other start", Facts{State: active(beforeBoot, identity(777, bootID)), Process: with(runner, func(p *Process) { p.StartTime = 778 })}, Policy{}, ClassOrphan, ReasonPIDReused},
		{"boot id differs, runner holds pid", Facts{State: active(identity(777, "boot-old")), Process: runner}, Policy{}, ClassOrphan, ReasonRebooted},
		{"clock says reused, runner holds pid", Facts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(time.Hour) })}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says reused, runner by comm", Facts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(time.Hour); p.Executable = "" })}, Policy{}, ClassLive, ReasonRunnerAmbiguous},
		{"clock says reused, zombie runner", Facts{State: active(), Process: with(runner, func(p *Process) { p.Started = recorded.Add(time.Hour); p.Zombie = true })}, Policy{}, ClassOrphan, ReasonRunnerZombie},
		{"clock says reused, no process", Facts{State: active()}, Policy{}, ClassOrphan, ReasonRunnerDead},
		{"clock says reused, test binary", Facts{State: active(), Process: with(other, func(p *Process) { p.Executable = "/tmp/gc.test" })}, Policy{}, ClassOrphan, ReasonPIDReused},
		// PIDs are judged only in the PID namespace they were recorded in.
		{"recorded namespace is ours", Facts{State: active(identity(777, bootID), inNS(hostNS))}, Policy{}, ClassOrphan, ReasonRunnerDead},
		{"recorded namespace is ours, in a container", Facts{State: active(identity(777, bootID), inNS(7)), PIDNamespace: container}, Policy{}, ClassOrphan, ReasonRunnerDead},
		{"recorded in another namespace", Facts{State: active(identity(777, bootID), inNS(7))}, Policy{}, ClassUnknown, ReasonOtherPIDNamespace},
		{"recorded in the host's, collector in a container", Facts{State: active(identity(777, bootID), inNS(hostNS)), PIDNamespace: container}, Policy{}, ClassUnknown, ReasonOtherPIDNamespace},
		{"released record, collector in a container", Facts{State: active(), PIDNamespace: container}, Policy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"released record, clock says rebooted, collector in a container", Facts{State: active(beforeBoot), PIDNamespace: container}, Policy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"released record, no trusted proc", Facts{State: active(), PIDNamespaceErr: untrusted}, Policy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"own record, no trusted proc", Facts{State: active(identity(777, bootID), inNS(hostNS)), PIDNamespaceErr: untrusted}, Policy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"boot id differs, other namespace", Facts{State: active(identity(777, "boot-old"), inNS(7)), PIDNamespaceErr: untrusted}, Policy{}, ClassOrphan, ReasonRebooted},
		// A record that names no namespace may be a container's: what the
		// host's PID rules would reclaim waits for the nested namespaces.
		{"released, dead here, runner in a container", Facts{State: active(), Elsewhere: nested(nestedRunner)}, Policy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, reused here, runner in a container", Facts{State: active(noStart), Process: other, Elsewhere: nested(nestedRunner)}, Policy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, zombie here, runner in a container", Facts{State: active(), Process: with(runner, func(p *Process) { p.Zombie = true }), Elsewhere: nested(nestedRunner)}, Policy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, clock says rebooted, runner in a container", Facts{State: active(beforeBoot), Elsewhere: nested(nestedRunner)}, Policy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, dead here, other process in a container", Facts{State: active(), Elsewhere: nested(nestedAs(other))}, Policy{}, ClassOrphan, ReasonRunnerDead},
		{"released, dead here, zombie runner in a container", Facts{State: active(), Elsewhere: nested(nestedAs(with(runner, func(p *Process) { p.Zombie = true })))}, Policy{}, ClassOrphan, ReasonRunnerDead},
		// As it would be here: a process started before the record, of
		// another name (a runner binary renamed), may be the runner.
		{"released, dead here, runner of another name in a container", Facts{State: active(), Elsewhere: nested(nestedAs(with(runner, func(p *Process) { p.Comm, p.Executable = "vmm", "/opt/vmm" })))}, Policy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, dead here, unreadable process in a container", Facts{State: active(), Elsewhere: nested(procinfo.Nested{PID: 9, Err: errors.New("EACCES")})}, Policy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"released, dead here, long-lived process of another name in a container", Facts{State: active(), Elsewhere: nested(nestedAs(with(runner, func(p *Process) {
			p.Comm, p.Executable, p.Started = "bash", "/usr/bin/bash", recorded.Add(-time.Hour)
		})))}, Policy{}, ClassOrphan, ReasonRunnerDead},
		{"own, no namespace recorded, dead, process of another name with its start time in a container", Facts{State: active(identity(777, bootID)), Elsewhere: nested(nestedAs(with(runner, func(p *Process) { p.Comm, p.Executable = "vmm", "/opt/vmm" })))}, Policy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"own, no namespace recorded, dead, process of another name in a container", Facts{State: active(identity(555, bootID)), Elsewhere: nested(nestedAs(with(runner, func(p *Process) { p.Comm, p.Executable = "vmm", "/opt/vmm" })))}, Policy{}, ClassOrphan, ReasonRunnerDead},
		{"released, dead here, no container sees every process", Facts{State: active(), Elsewhere: Elsewhere{Looked: true, Err: errors.New("hidepid")}}, Policy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"released, dead here, containers not looked at", Facts{State: active(), Elsewhere: notLooked}, Policy{}, ClassUnknown, ReasonPIDNamespaceUnknown},
		{"released, runner here, containers not looked at", Facts{State: active(), Process: runner, Elsewhere: notLooked}, Policy{}, ClassLive, ReasonRunnerMatches},
		{"own namespace recorded, dead, runner in a container", Facts{State: active(identity(777, bootID), inNS(hostNS)), Elsewhere: nested(nestedRunner)}, Policy{}, ClassOrphan, ReasonRunnerDead},
		{"own, no namespace recorded, dead, runner in a container", Facts{State: active(identity(777, bootID)), Elsewhere: nested(nestedRunner)}, Policy{}, ClassLive, ReasonRunnerOtherNamespace},
		{"marker, runner in a container", Facts{State: active(marker), Elsewhere: nested(nestedRunner)}, Policy{}, ClassOrphan, ReasonRunEnded},
		{"other boot id, runner in a container", Facts{State: active(identity(777, "boot-old")), Elsewhere: nested(nestedRunner)}, Policy{}, ClassOrphan, ReasonRebooted},
		{"hidden process", Facts{State: active(), Process: Process{Exists: true, Err: errors.New("process exists but /proc does not show it")}}, Policy{}, ClassLive, ReasonIdentityUnreadable},
		{"unknown boot facts are not evidence", Facts{State: active(), Process: runner, BootID: "-", BootTime: time.Time{}}, Policy{}, ClassLive, ReasonRunnerMatches},
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
			if f.PIDNamespace == (procinfo.PIDNamespace{}) {
				f.PIDNamespace = procinfo.PIDNamespace{Inode: hostNS, Initial: true}
			}
			if !f.Elsewhere.Looked && f.Elsewhere.Procs == nil {
				f.Elsewhere.Looked = true
			}
			v := Classify(f, tt.p)
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
		f    Facts
		want time.Duration
	}{
		{"created_at", Facts{State: &state.State{CreatedAt: now.Add(-time.Hour)}, StateModTime: now.Add(-time.Minute)}, time.Hour},
		{"mtime when created_at unset", Facts{State: &state.State{}, StateModTime: now.Add(-time.Minute)}, time.Minute},
		{"future is zero", Facts{State: &state.State{CreatedAt: now.Add(time.Hour)}}, 0},
		{"nothing known", Facts{}, 0},
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
		f    Facts
		want time.Duration
	}{
		{"stopped after creation", Facts{State: &state.State{CreatedAt: now.Add(-month)}, StateModTime: now.Add(-time.Minute)}, time.Minute},
		{"mtime before created_at", Facts{State: &state.State{CreatedAt: now.Add(-time.Hour)}, StateModTime: now.Add(-month)}, time.Hour},
		{"created_at only", Facts{State: &state.State{CreatedAt: now.Add(-time.Hour)}}, time.Hour},
		{"mtime only", Facts{State: &state.State{}, StateModTime: now.Add(-time.Minute)}, time.Minute},
		{"created_at in the future", Facts{State: &state.State{CreatedAt: now.Add(month)}, StateModTime: now.Add(-time.Hour)}, time.Hour},
		{"created_at in the future only", Facts{State: &state.State{CreatedAt: now.Add(month)}}, 0},
		{"future is zero", Facts{State: &state.State{CreatedAt: now.Add(-month)}, StateModTime: now.Add(time.Hour)}, 0},
		{"no state, mtime", Facts{StateModTime: now.Add(-time.Minute)}, time.Minute},
		{"nothing known", Facts{}, 0},
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

// TestStoppedDetail: a stopped record's detail says which age it was
// judged by, and why it is kept when that age is unknown.
func TestStoppedDetail(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	created := &state.State{Version: 1, CreatedAt: now.Add(-30 * 24 * time.Hour)}
	p := Policy{Stopped: true, StoppedMinAge: 24 * time.Hour}
	tests := []struct {
		name string
		f    Facts
		p    Policy
		want string
	}{
		{"not opted in", Facts{State: created}, Policy{}, "stopped cleanly"},
		{"stopped a minute ago", Facts{State: created, StateModTime: now.Add(-time.Minute)}, p, "stopped cleanly, age 1m0s < 24h0m0s (since its last change)"},
		{"stopped two days ago", Facts{State: created, StateModTime: now.Add(-48 * time.Hour)}, p, "stopped, age 48h0m0s >= 24h0m0s (since its last change)"},
		{"every time in the future", Facts{State: &state.State{Version: 1, CreatedAt: now.Add(time.Hour)}, StateModTime: now.Add(time.Hour)}, p,
			"stopped cleanly; its recorded times are in the future, so its age is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.Now = now
			if v := Classify(tt.f, tt.p); v.Detail != tt.want {
				t.Errorf("Detail = %q, want %q", v.Detail, tt.want)
			}
		})
	}
}
