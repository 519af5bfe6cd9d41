// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// TestClassesWithRealProcesses makes one data directory per row of the
// classification table, backed by real processes, locks and files, and
// checks the verdict of Scan and Orphans and the action of Collect.
func TestClassesWithRealProcesses(t *testing.T) {
	t.Parallel()
	bootID, err := procinfo.BootID()
	if err != nil {
		t.Fatal(err)
	}
	bootTime, err := procinfo.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	// active is a released-format record of pid: no marker, no identity.
	active := func(pid int, recorded time.Time) *state.State {
		return &state.State{Version: 1, Active: true, Name: "vm", PID: pid, PIDStartTime: recorded, CreatedAt: time.Now()}
	}
	runner := func(t *testing.T) procinfo.Info {
		return lookup(t, startRunner(t).Process.Pid)
	}
	unrelated := func(t *testing.T) procinfo.Info {
		return lookup(t, startHelper(t, "sleep", "", "ready").Pid())
	}
	unreadable := func(content string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			makeVM(t, dir, orphanState())
			writeFile(t, filepath.Join(dir, state.FileName), content)
		}
	}

	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string)
		opts   []Option
		class  Class
		reason Reason
	}{
		{"live runner, released record", func(t *testing.T, dir string) {
			makeVM(t, dir, active(runner(t).PID, time.Time{}))
		}, nil, ClassLive, ReasonRunnerMatches},
		{"live runner, pid_start_time", func(t *testing.T, dir string) {
			makeVM(t, dir, active(runner(t).PID, time.Now()))
		}, nil, ClassLive, ReasonRunnerMatches},
		{"live runner, exact identity", func(t *testing.T, dir string) {
			info := runner(t)
			s := active(info.PID, time.Time{})
			s.Runner = &state.Identity{StartTime: info.StartTime, BootID: bootID, Executable: runnerPath}
			makeVM(t, dir, s)
		}, nil, ClassLive, ReasonRunnerMatches},
		{"unrelated process, released record", func(t *testing.T, dir string) {
			makeVM(t, dir, active(unrelated(t).PID, time.Time{}))
		}, nil, ClassOrphan, ReasonPIDReused},
		{"unrelated process started after the record", func(t *testing.T, dir string) {
			info := unrelated(t)
			makeVM(t, dir, active(info.PID, info.Started.Add(-time.Minute)))
		}, nil, ClassOrphan, ReasonPIDReused},
		{"unrelated process started before the record", func(t *testing.T, dir string) {
			makeVM(t, dir, active(unrelated(t).PID, time.Now()))
		}, nil, ClassLive, ReasonRunnerAmbiguous},
		{"runner with another start time", func(t *testing.T, dir string) {
			info := runner(t)
			s := active(info.PID, time.Time{})
			s.Runner = &state.Identity{StartTime: info.StartTime + 1, BootID: bootID}
			makeVM(t, dir, s)
		}, nil, ClassOrphan, ReasonPIDReused},
		{"zombie", func(t *testing.T, dir string) {
			cmd := startRunner(t)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "pid to become a zombie", func() bool { return lookup(t, cmd.Process.Pid).Zombie })
			makeVM(t, dir, active(cmd.Process.Pid, time.Now()))
		}, nil, ClassOrphan, ReasonRunnerZombie},
		{"dead pid", func(t *testing.T, dir string) {
			cmd := startRunner(t)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			makeVM(t, dir, active(cmd.Process.Pid, time.Now()))
		}, nil, ClassOrphan, ReasonRunnerDead},
		{"pid_start_time before boot, unrelated process", func(t *testing.T, dir string) {
			makeVM(t, dir, active(unrelated(t).PID, bootTime.Add(-time.Hour)))
		}, nil, ClassOrphan, ReasonRebooted},
		{"pid_start_time before boot, dead pid", func(t *testing.T, dir string) {
			cmd := startRunner(t)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			makeVM(t, dir, active(cmd.Process.Pid, bootTime.Add(-time.Hour)))
		}, nil, ClassOrphan, ReasonRebooted},
		{"clock says rebooted, runner holds the pid", func(t *testing.T, dir string) {
			makeVM(t, dir, active(runner(t).PID, bootTime.Add(-time.Hour)))
		}, nil, ClassLive, ReasonRunnerAmbiguous},
		{"clock says pid reused, runner holds the pid", func(t *testing.T, dir string) {
			info := runner(t)
			makeVM(t, dir, active(info.PID, info.Started.Add(-time.Minute)))
		}, nil, ClassLive, ReasonRunnerAmbiguous},
		{"exact identity of this boot, pid_start_time before boot", func(t *testing.T, dir string) {
			info := runner(t)
			s := active(info.PID, bootTime.Add(-time.Hour))
			s.Runner = &state.Identity{StartTime: info.StartTime, BootID: bootID, Executable: runnerPath}
			makeVM(t, dir, s)
		}, nil, ClassLive, ReasonRunnerMatches},
		{"other boot id", func(t *testing.T, dir string) {
			info := runner(t)
			s := active(info.PID, time.Now())
			s.Runner = &state.Identity{StartTime: info.StartTime, BootID: "00000000-0000-0000-0000-000000000000"}
			makeVM(t, dir, s)
		}, nil, ClassOrphan, ReasonRebooted},
		{"lease held by another process", func(t *testing.T, dir string) {
			makeVM(t, dir, orphanState())
			startHelper(t, "lease", dir, "ready")
		}, nil, ClassLive, ReasonLeaseHeld},
		{"state lock held by another process", func(t *testing.T, dir string) {
			makeVM(t, dir, orphanState())
			startHelper(t, "lock", dir, "ready")
		}, nil, ClassBusy, ReasonStateLocked},
		{"marker set, lease free, runner alive", func(t *testing.T, dir string) {
			info := runner(t)
			s := active(info.PID, time.Now())
			s.Leased = true
			s.Runner = &state.Identity{StartTime: info.StartTime, BootID: bootID, Executable: runnerPath}
			makeVM(t, dir, s)
		}, nil, ClassLive, ReasonLeaseLost},
		{"marker set, lease free, runner alive without exact identity", func(t *testing.T, dir string) {
			s := active(runner(t).PID, time.Now())
			s.Leased = true
			makeVM(t, dir, s)
		}, nil, ClassOrphan, ReasonRunEnded},
		{"marker set, lease free, another process with the pid", func(t *testing.T, dir string) {
			info := runner(t)
			s := active(info.PID, time.Now())
			s.Leased = true
			s.Runner = &state.Identity{StartTime: info.StartTime + 1, BootID: bootID, Executable: runnerPath}
			makeVM(t, dir, s)
		}, nil, ClassOrphan, ReasonRunEnded},
		{"marker set, no runner ever", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1, Leased: true, CreatedAt: time.Now()})
			os.RemoveAll(filepath.Join(dir, rootfsWorkName, "usr"))
		}, nil, ClassOrphan, ReasonRunEnded},
		{"active without pid", func(t *testing.T, dir string) {
			makeVM(t, dir, active(0, time.Time{}))
		}, nil, ClassUnknown, ReasonNoPID},
		{"inactive", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1, CreatedAt: time.Now().Add(-time.Minute)})
		}, nil, ClassStopped, ReasonInactive},
		{"inactive, WithStopped(0)", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1, CreatedAt: time.Now().Add(-time.Minute)})
		}, []Option{WithStopped(0)}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, WithStopped(1h)", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1, CreatedAt: time.Now().Add(-time.Minute)})
		}, []Option{WithStopped(time.Hour)}, ClassStopped, ReasonInactive},
		{"inactive, created a month ago, stopped just now, WithStopped(24h)", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1, CreatedAt: time.Now().Add(-30 * 24 * time.Hour)})
		}, []Option{WithStopped(24 * time.Hour)}, ClassStopped, ReasonInactive},
		{"inactive, created a month ago, stopped two days ago, WithStopped(24h)", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1, CreatedAt: time.Now().Add(-30 * 24 * time.Hour)})
			old := time.Now().Add(-48 * time.Hour)
			if err := os.Chtimes(filepath.Join(dir, state.FileName), old, old); err != nil {
				t.Fatal(err)
			}
		}, []Option{WithStopped(24 * time.Hour)}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, created_at in the future, stopped two days ago, WithStopped(24h)", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1, CreatedAt: time.Now().Add(365 * 24 * time.Hour)})
			old := time.Now().Add(-48 * time.Hour)
			if err := os.Chtimes(filepath.Join(dir, state.FileName), old, old); err != nil {
				t.Fatal(err)
			}
		}, []Option{WithStopped(24 * time.Hour)}, ClassOrphan, ReasonStoppedExpired},
		{"inactive, every time in the future, WithStopped(24h)", func(t *testing.T, dir string) {
			future := time.Now().Add(365 * 24 * time.Hour)
			makeVM(t, dir, &state.State{Version: 1, CreatedAt: future})
			if err := os.Chtimes(filepath.Join(dir, state.FileName), future, future); err != nil {
				t.Fatal(err)
			}
		}, []Option{WithStopped(24 * time.Hour)}, ClassStopped, ReasonInactive},
		{"inactive, no created_at, WithStopped(0)", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1})
		}, []Option{WithStopped(0)}, ClassOrphan, ReasonStoppedExpired},
		{"state file is a FIFO", func(t *testing.T, dir string) {
			makeVM(t, dir, orphanState())
			os.Remove(filepath.Join(dir, state.FileName))
			if err := syscall.Mkfifo(filepath.Join(dir, state.FileName), 0o644); err != nil {
				t.Fatal(err)
			}
		}, nil, ClassUnreadable, ReasonUnreadable},
		{"state file is a directory", func(t *testing.T, dir string) {
			makeVM(t, dir, orphanState())
			os.Remove(filepath.Join(dir, state.FileName))
			writeJSON(t, filepath.Join(dir, state.FileName), orphanState())
		}, nil, ClassUnreadable, ReasonUnreadable},
		{"state file is a symlink", func(t *testing.T, dir string) {
			makeVM(t, dir, orphanState())
			outside := filepath.Join(filepath.Dir(filepath.Dir(dir)), "outside")
			writeJSON(t, outside, orphanState())
			os.Remove(filepath.Join(dir, state.FileName))
			if err := os.Symlink(filepath.Join(outside, state.FileName), filepath.Join(dir, state.FileName)); err != nil {
				t.Fatal(err)
			}
		}, nil, ClassUnreadable, ReasonUnreadable},
		{"state file over 64 KiB", unreadable(`{"version":1,"active":true,"leased":true,"name":"` + strings.Repeat("a", 70<<10) + `"}`), nil, ClassUnreadable, ReasonUnreadable},
		{"state file bad JSON", unreadable(`{"version":1,"active":tru`), nil, ClassUnreadable, ReasonUnreadable},
		{"state file JSON null", unreadable(`null`), nil, ClassUnreadable, ReasonUnreadable},
		{"state file empty", unreadable(``), nil, ClassUnreadable, ReasonUnreadable},
		{"state file version 2", unreadable(`{"version":2,"active":true,"leased":true}`), nil, ClassUnreadable, ReasonUnreadable},
		{"state file wrong types", unreadable(`{"version":"1","active":1,"pid":"12"}`), nil, ClassUnreadable, ReasonUnreadable},
		{"state file binary", unreadable("\x00\xff\xfe{\"version\":1}"), nil, ClassUnreadable, ReasonUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			root := filepath.Join(base, "root")
			dir := filepath.Join(root, "vm")
			tt.setup(t, dir)

			c := scanOneWith(t, root, dir, tt.opts...)
			if c.Class != tt.class || c.Reason != tt.reason {
				t.Fatalf("Scan: %s/%s (%s), want %s/%s", c.Class, c.Reason, c.Detail, tt.class, tt.reason)
			}
			if (tt.class == ClassUnreadable) != (c.Err != nil) {
				t.Errorf("Scan: Err = %v for class %s", c.Err, c.Class)
			}
			orphans, err := Orphans(root, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(orphans) == 1 && orphans[0].Path == dir; got != (tt.class == ClassOrphan) {
				t.Errorf("Orphans = %v, want it to list %s: %v", orphans, dir, tt.class == ClassOrphan)
			}

			outside := snapshotIfExists(t, filepath.Join(base, "outside"))
			before := snapshot(t, dir)
			rep := collect(t, root, tt.opts...)
			sameSnapshot(t, "outside", outside, snapshotIfExists(t, filepath.Join(base, "outside")))
			if tt.class == ClassOrphan {
				mustNotExist(t, dir)
				if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != dir || rep.Reclaimed[0].Reason != tt.reason {
					t.Fatalf("Reclaimed = %+v, want %s (%s)", rep.Reclaimed, dir, tt.reason)
				}
				if rep.Reclaimed[0].Bytes <= 0 || rep.BytesFreed != rep.Reclaimed[0].Bytes {
					t.Errorf("bytes freed %d, report total %d", rep.Reclaimed[0].Bytes, rep.BytesFreed)
				}
				mustExist(t, root)
				return
			}
			sameSnapshot(t, "kept data dir", before, snapshot(t, dir))
			if len(rep.Reclaimed) != 0 || len(rep.Kept) != 1 || rep.Kept[0].Class != tt.class || rep.Kept[0].Reason != tt.reason {
				t.Errorf("Collect reclaimed %+v, kept %+v; want %s kept as %s/%s", rep.Reclaimed, rep.Kept, dir, tt.class, tt.reason)
			}
		})
	}
}

func scanOneWith(t testing.TB, root, path string, opts ...Option) Candidate {
	t.Helper()
	cands, err := Scan(root, opts...)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(cands) != 1 || cands[0].Path != path {
		t.Fatalf("Scan = %+v, want only %s", cands, path)
	}
	return cands[0]
}

func snapshotIfExists(t testing.TB, path string) map[string]string {
	t.Helper()
	if !exists(t, path) {
		return map[string]string{}
	}
	return snapshot(t, path)
}

// waitFor polls cond until it holds, failing the test after the guard.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLeaseLostRealRunner records a real stand-in runner with its exact
// identity and the run marker, without the lease (as a runner that closed
// its inherited descriptor): it is kept while it runs, and reclaimed once
// it has been killed and reaped.
func TestLeaseLostRealRunner(t *testing.T) {
	t.Parallel()
	bootID, err := procinfo.BootID()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "root")
	dir := filepath.Join(root, "vm")
	cmd := startRunner(t)
	info := lookup(t, cmd.Process.Pid)
	s := &state.State{Version: 1, Active: true, Name: "vm", PID: info.PID, PIDStartTime: time.Now(), CreatedAt: time.Now(), Leased: true,
		Runner: &state.Identity{StartTime: info.StartTime, BootID: bootID, Executable: runnerPath}}
	makeVM(t, dir, s)

	if c := scanOne(t, root, dir); c.Class != ClassLive || c.Reason != ReasonLeaseLost {
		t.Fatalf("Scan with the runner alive: %s/%s (%s), want live/lease-lost", c.Class, c.Reason, c.Detail)
	}
	if orphans, err := Orphans(root); err != nil || len(orphans) != 0 {
		t.Fatalf("Orphans with the runner alive = %+v, %v; want none", orphans, err)
	}
	before := snapshot(t, dir)
	rep := collect(t, root)
	sameSnapshot(t, "data dir with the runner alive", before, snapshot(t, dir))
	if len(rep.Reclaimed) != 0 || len(rep.Kept) != 1 || rep.Kept[0].Reason != ReasonLeaseLost {
		t.Fatalf("Collect with the runner alive: reclaimed %+v, kept %+v; want %s kept as lease-lost", rep.Reclaimed, rep.Kept, dir)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if c := scanOne(t, root, dir); c.Class != ClassOrphan || c.Reason != ReasonRunEnded {
		t.Fatalf("Scan after the runner died: %s/%s (%s), want orphan/run-ended", c.Class, c.Reason, c.Detail)
	}
	rep = collect(t, root)
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != dir || rep.Reclaimed[0].Reason != ReasonRunEnded {
		t.Fatalf("Collect after the runner died: reclaimed %+v, kept %+v; want %s reclaimed", rep.Reclaimed, rep.Kept, dir)
	}
	mustNotExist(t, dir)
	mustExist(t, root)
}
