// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tempFiles lists the in-flight save files left in dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, TempPattern))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSave(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := NewManager(dir)
	ls, err := m.LoadAndLock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Release()
	for i, v := range []int{7, 0, -3} {
		ls.Version = v
		ls.CPUs = uint32(i + 1)
		if err := ls.Save(); err != nil {
			t.Fatal(err)
		}
		got, err := m.Load()
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != CurrentVersion || got.CPUs != uint32(i+1) {
			t.Errorf("after Save with version %d: version %d cpus %d, want %d %d", v, got.Version, got.CPUs, CurrentVersion, i+1)
		}
	}
	if tmp := tempFiles(t, dir); len(tmp) != 0 {
		t.Errorf("temp files left after successful saves: %v", tmp)
	}
	fi, err := os.Stat(m.statePath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("state file mode %v readable by others", fi.Mode())
	}
}

func TestSaveFailureLeavesNoTemp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, ls *LockedState)
	}{
		{"rename over a non-empty directory", func(t *testing.T, ls *LockedState) {
			if err := os.MkdirAll(filepath.Join(ls.m.statePath(), "x"), 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{"unencodable time", func(t *testing.T, ls *LockedState) {
			ls.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ls, err := NewManager(dir).LoadAndLock(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer ls.Release()
			tt.setup(t, ls)
			if err := ls.Save(); err == nil {
				t.Fatal("Save succeeded, want an error")
			}
			if tmp := tempFiles(t, dir); len(tmp) != 0 {
				t.Errorf("temp files left after a failed save: %v", tmp)
			}
		})
	}
}

func TestRemoveAndRelease(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := NewManager(dir)
	ls, err := m.LoadAndLock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := ls.Save(); err != nil {
		t.Fatal(err)
	}
	if err := ls.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := ls.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := os.Lstat(m.statePath()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state file after Remove: %v", err)
	}
	if held, err := probeLock(dir); err != nil || !held {
		t.Errorf("lock after Remove: held=%v err=%v, want still held", held, err)
	}
	// A collector reclaiming the directory unlinks the lock file while it
	// still holds the lock.
	if err := os.Remove(m.LockPath()); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	for name, f := range map[string]func() error{"Save": ls.Save, "Remove": ls.Remove} {
		if err := f(); err == nil {
			t.Errorf("%s after Release succeeded, want an error", name)
		}
	}
	// A later writer starts over on a fresh lock file.
	ls2, err := m.TryLoadAndLock()
	if err != nil {
		t.Fatal(err)
	}
	if err := ls2.Close(); err != nil {
		t.Fatal(err)
	}
}

// A save that records a new runner PID under a loaded run marker without
// recording the runner's identity (released microvm.Run's save after a
// spawner of its own started the runner) drops the marker; saves that keep
// the recorded runner, or record the new one's identity, keep it.
func TestSaveDropsMarkerOfUnknownRunner(t *testing.T) {
	t.Parallel()
	ident := &Identity{StartTime: 42, BootID: "boot", Executable: "/bin/go-microvm-runner"}
	tests := []struct {
		name       string
		claimed    State // saved first, by the claim (and our spawn)
		edit       func(*LockedState)
		wantLeased bool
	}{
		{"released save after an unknown spawn", State{Leased: true}, func(ls *LockedState) {
			ls.Active, ls.PID, ls.PIDStartTime = true, 4242, time.Now()
		}, false},
		{"released save after our spawn", State{Active: true, Leased: true, PID: 4242, Runner: ident}, func(ls *LockedState) {
			ls.Active, ls.PID, ls.PIDStartTime = true, 4242, time.Now()
		}, true},
		{"our spawn", State{Leased: true}, func(ls *LockedState) {
			ls.Active, ls.PID, ls.Runner = true, 4242, &Identity{StartTime: 7, BootID: "boot"}
		}, true},
		{"released stop", State{Active: true, Leased: true, PID: 4242, Runner: ident}, func(ls *LockedState) {
			ls.Active, ls.PID = false, 0
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := NewManager(t.TempDir())
			for _, edit := range []func(*LockedState){func(ls *LockedState) { *ls.State = tt.claimed }, tt.edit} {
				ls, err := m.LoadAndLock(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				edit(ls)
				if err := ls.Save(); err != nil {
					t.Fatal(err)
				}
				ls.Release()
			}
			s, err := m.Load()
			if err != nil {
				t.Fatal(err)
			}
			if s.Leased != tt.wantLeased || (!s.Leased && s.Runner != nil) {
				t.Errorf("after the save: leased %v, runner %+v; want leased %v", s.Leased, s.Runner, tt.wantLeased)
			}
		})
	}
}
