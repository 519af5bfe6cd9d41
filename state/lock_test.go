// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// settle gives a helper that announced it is about to block a moment to
// reach its first poll. Nothing is asserted about it: the outcome must be
// the same whether the helper got there or not.
func settle() { time.Sleep(100 * time.Millisecond) }

func TestTryLoadAndLockHeldByAnotherProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startHelper(t, "lock", dir)
	a.Expect("waiting")
	a.Expect("locked")

	m := NewManager(dir)
	_, err := within(t, "TryLoadAndLock", m.TryLoadAndLock)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLoadAndLock while another process holds the lock: %v, want ErrLocked", err)
	}
	if held, err := probeLock(dir); err != nil || !held {
		t.Errorf("ProbeLock = %v, %v; want held", held, err)
	}
	_, err = within(t, "LoadAndLockWithRetry", func() (*LockedState, error) {
		return m.LoadAndLockWithRetry(t.Context(), 50*time.Millisecond)
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("LoadAndLockWithRetry while held: %v, want DeadlineExceeded, saying timeout as released does", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := m.LoadAndLock(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadAndLock with a cancelled context: %v, want Canceled", err)
	}

	a.Do("release")
	a.WaitOK()
	if held, err := probeLock(dir); err != nil || held {
		t.Errorf("ProbeLock after the holder released = %v, %v; want free", held, err)
	}
	ls, err := m.TryLoadAndLock()
	if err != nil {
		t.Fatalf("TryLoadAndLock after release: %v", err)
	}
	ls.Release()
}

// TestLockWaiterFollowsReplacedFile: process A holds the lock, B waits in
// LoadAndLock, A unlinks or renames the lock file and releases. B must end
// up holding the lock that the path names, and its save must land in the
// live directory.
func TestLockWaiterFollowsReplacedFile(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"unlink", "rename"} {
		t.Run(action, func(t *testing.T) {
			dir := t.TempDir()
			a := startHelper(t, "lock", dir)
			a.Expect("waiting")
			a.Expect("locked")
			b := startHelper(t, "lock", dir)
			b.Expect("waiting")
			settle()

			a.Do(action)
			a.Do("release")
			a.WaitOK()
			b.Expect("locked")

			if held, err := probeLock(dir); err != nil || !held {
				t.Fatalf("ProbeLock on the live path = %v, %v; B holds a dead inode", held, err)
			}
			if _, err := NewManager(dir).TryLoadAndLock(); !errors.Is(err, ErrLocked) {
				t.Fatalf("TryLoadAndLock while B holds: %v, want ErrLocked", err)
			}
			if action == "rename" {
				// The old inode must be free: nobody may be left on it.
				f, err := os.Open(filepath.Join(dir, LockFileName+".old"))
				if err != nil {
					t.Fatal(err)
				}
				ok, err := tryFlock(f)
				f.Close()
				if err != nil || !ok {
					t.Errorf("renamed-away lock file is still locked (ok=%v err=%v)", ok, err)
				}
			}
			b.Do("save B")
			b.Do("release")
			b.WaitOK()
			s, err := NewManager(dir).Load()
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != "B" {
				t.Errorf("state name %q: B's save did not land in the live directory", s.Name)
			}
		})
	}
}

// TestLockWaiterGivesUpOnRemovedDirectory: a collector reclaims the whole
// data directory while B waits; B must not bring the directory back.
func TestLockWaiterGivesUpOnRemovedDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "d")
	m := NewManager(dir)
	ls, err := m.LoadAndLock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b := startHelper(t, "lock", dir)
	b.Expect("waiting")
	settle()
	// A collector reclaiming the directory moves it to its trash, then
	// unlinks the lock file while it still holds the lock. The move takes
	// the path away at once: removing the lock file first and then the
	// directory would leave a window in which the polling waiter creates
	// a fresh lock file in the directory, as any writer may.
	trash := dir + ".trash"
	if err := os.Rename(dir, trash); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(trash, LockFileName)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(trash); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
	line := b.Expect("error:")
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the waiter brought the reclaimed directory back (%s): %v", line, err)
	}
}

// TestLockInodeRecheck replaces the lock file in the window between a
// successful flock and the inode check, which the cross-process tests can
// only hit by luck.
func TestLockInodeRecheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		replace func(t *testing.T, path string)
	}{
		{"unlinked", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"renamed and replaced", func(t *testing.T, path string) {
			if err := os.Rename(path, path+".old"); err != nil {
				t.Fatal(err)
			}
			write(t, path, "")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			calls := 0
			replaceOnce := func(path string) {
				calls++
				if calls == 1 {
					tt.replace(t, path)
				}
			}
			for _, try := range []bool{false, true} {
				calls = 0
				m := NewManager(dir)
				m.afterLock = &replaceOnce
				var ls *LockedState
				var err error
				if try {
					ls, err = m.TryLoadAndLock()
				} else {
					ls, err = m.LoadAndLock(t.Context())
				}
				if err != nil {
					t.Fatal(err)
				}
				if calls != 2 {
					t.Errorf("flock succeeded %d times, want 2 (a retry after the replacement)", calls)
				}
				if held, err := probeLock(dir); err != nil || !held {
					t.Errorf("ProbeLock = %v, %v; the lock is on a dead inode", held, err)
				}
				ls.Release()
				os.Remove(filepath.Join(dir, LockFileName+".old"))
			}
		})
	}
}

func TestLockFileSymlinkRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Symlink(target, filepath.Join(dir, LockFileName)); err != nil {
		t.Fatal(err)
	}
	if _, err := NewManager(dir).TryLoadAndLock(); err == nil {
		t.Fatal("TryLoadAndLock through a symlinked lock file succeeded")
	}
	if _, err := probeLock(dir); err == nil {
		t.Error("ProbeLock through a symlinked lock file succeeded")
	}
	if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the symlink target was created: %v", err)
	}
}

// As released: a directory without a state file loads as a fresh state
// created now, and a corrupt file's error says "parse state file" whether
// it is loaded with or without the lock.
func TestReleasedLoadBehaviour(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new")
	m := NewManager(dir)
	before := time.Now()
	ls, err := m.LoadAndLock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if c := ls.CreatedAt; c.Before(before) || c.After(time.Now()) {
		t.Errorf("CreatedAt of a fresh state = %v, want between %v and now", c, before)
	}
	ls.Release()
	ls.Release()

	if err := os.WriteFile(m.statePath(), []byte("{corrupt"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = m.LoadAndLock(t.Context())
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "parse state file") {
		t.Errorf("LoadAndLock of a corrupt file: %v, want ErrCorrupt saying parse state file", err)
	}
	if _, err := m.Load(); err == nil || !strings.Contains(err.Error(), "parse state file") {
		t.Errorf("Load of a corrupt file: %v, want an error saying parse state file", err)
	}
	// The failed LoadAndLock let go of the lock.
	if held, err := probeLock(dir); err != nil || held {
		t.Errorf("ProbeLock after a failed LoadAndLock = %v, %v; want free", held, err)
	}
}
