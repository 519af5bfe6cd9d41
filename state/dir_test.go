// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/sysat"
	"github.com/stacklok/go-microvm/internal/testproc"
)

// The collector's descriptor-relative API lives in internal/datadir; these
// tests hold it to the rules of the path-based functions here, which are
// built on it.

// openDir opens dir as a datadir.Dir, closed when the test ends.
func openDir(t *testing.T, dir string) datadir.Dir {
	t.Helper()
	fd, err := unix.Open(dir, sysat.DirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := datadir.NewDir(fd, dir)
	t.Cleanup(func() { unix.Close(fd) })
	return d
}

// parseInto returns a datadir.Parser that stores what Parse returns in *s.
func parseInto(s **State) datadir.Parser {
	return func(data []byte) (err error) {
		*s, err = Parse(data)
		return err
	}
}

// readDir is d.Read with Parse.
func readDir(d datadir.Dir) (*State, datadir.FileInfo, error) {
	var s *State
	fi, err := d.Read(parseInto(&s))
	return s, fi, err
}

// mknodUnbound makes a character device with a device number no driver
// serves: opening it fails with ENXIO, so an error matching ErrNotRegular
// (and not ENXIO) proves the node was refused without being opened.
func mknodUnbound(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(4000, 7))); err != nil {
		t.Skipf("mknod refused (%v): the device cases need root", err)
	}
}

const validState = `{"version":1,"active":true,"name":"x","pid":1}`

func TestDirRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  error // nil: reads as validState
	}{
		{"regular", func(t *testing.T, path string) { write(t, path, validState) }, nil},
		{"missing", func(t *testing.T, path string) {}, fs.ErrNotExist},
		{"fifo", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular},
		// A device is refused before it is opened: opening this one
		// would fail with ENXIO instead.
		{"device", func(t *testing.T, path string) { mknodUnbound(t, path) }, ErrNotRegular},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular},
		{"symlink", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "real.json")
			write(t, target, validState)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular},
		{"over the cap", func(t *testing.T, path string) {
			write(t, path, validState+strings.Repeat(" ", MaxFileSize))
		}, ErrTooLarge},
		{"bad JSON", func(t *testing.T, path string) { write(t, path, "{") }, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			tt.setup(t, path)
			d := openDir(t, dir)
			s, err := within(t, "Dir.Read", func() (*State, error) {
				s, _, err := readDir(d)
				return s, err
			})
			if tt.want == nil {
				if err != nil || s.Name != "x" || s.PID != 1 {
					t.Fatalf("Dir.Read = %+v, %v; want the state", s, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Dir.Read: %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			// The path-based read is the same code and says the same.
			if _, perr := ReadFile(path); !errors.Is(perr, tt.want) {
				t.Errorf("ReadFile: %v, want %v", perr, tt.want)
			}
		})
	}
}

// TestDirReadThroughDescriptor: a Dir reads the directory it was opened
// on, even after its path names another one.
func TestDirReadThroughDescriptor(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	dir := filepath.Join(base, "d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, FileName), `{"version":1,"name":"opened"}`)
	d := openDir(t, dir)
	if err := os.Rename(dir, filepath.Join(base, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, FileName), `{"version":1,"name":"other"}`)
	sf, err := d.OpenState()
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	var s *State
	fi, err := sf.Read(parseInto(&s))
	if err != nil || s.Name != "opened" {
		t.Fatalf("Read = %+v, %v; want the opened directory's state", s, err)
	}
	if fi.ModTime.IsZero() || fi.Dev == 0 {
		t.Errorf("FileInfo %+v, want the file's device and time", fi)
	}
}

// TestLockFileHostile plants, at the state lock's name, what must neither
// be opened nor waited on, and checks every lock entry point: the writer's
// LoadAndLock and TryLoadAndLock, and the collector's Dir.TryLock.
func TestLockFileHostile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		plant func(t *testing.T, lock string)
		// want is the error of every lock; nil: the lock is taken.
		want error
		// probeErr: ProbeLock fails (else it reports "not held").
		probeErr bool
	}{
		{"device", mknodUnbound, ErrNotRegular, false},
		{"directory", func(t *testing.T, lock string) {
			if err := os.Mkdir(lock, 0o700); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular, false},
		{"socket", func(t *testing.T, lock string) {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			if err := unix.Bind(fd, &unix.SockaddrUnix{Name: lock}); err != nil {
				t.Skipf("bind a socket at %s: %v", lock, err)
			}
		}, ErrNotRegular, false},
		{"symlink", func(t *testing.T, lock string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(lock), "target"), lock); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular, true},
		// A FIFO is locked like a file (released writers do so), opened
		// without waiting for a writer and never read.
		{"fifo", func(t *testing.T, lock string) {
			if err := syscall.Mkfifo(lock, 0o600); err != nil {
				t.Fatal(err)
			}
		}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, FileName), validState)
			lock := filepath.Join(dir, LockFileName)
			tt.plant(t, lock)
			m := NewManager(dir)
			d := openDir(t, dir)
			locks := []struct {
				what string
				lock func() (func() error, error)
			}{
				{"LoadAndLock", func() (func() error, error) {
					ls, err := m.LoadAndLockWithRetry(t.Context(), guard)
					if err != nil {
						return nil, err
					}
					return ls.Close, nil
				}},
				{"TryLoadAndLock", func() (func() error, error) {
					ls, err := m.TryLoadAndLock()
					if err != nil {
						return nil, err
					}
					return ls.Close, nil
				}},
				{"Dir.TryLock", func() (func() error, error) {
					l, err := d.TryLock()
					if err != nil {
						return nil, err
					}
					return l.Release, nil
				}},
			}
			for _, l := range locks {
				release, err := within(t, l.what, l.lock)
				if tt.want == nil {
					if err != nil {
						t.Fatalf("%s: %v, want the lock", l.what, err)
					}
					if held, err := probeLock(dir); err != nil || !held {
						t.Errorf("%s holds it, but ProbeLock = %v, %v", l.what, held, err)
					}
					if err := release(); err != nil {
						t.Errorf("%s release: %v", l.what, err)
					}
					continue
				}
				if !errors.Is(err, tt.want) || errors.Is(err, unix.ENXIO) {
					t.Errorf("%s: %v, want %v", l.what, err, tt.want)
				} else if !strings.Contains(err.Error(), lock) {
					t.Errorf("%s: error %q does not name %s", l.what, err, lock)
				}
			}
			for _, p := range []struct {
				what  string
				probe func() (bool, error)
			}{{"ProbeLock", func() (bool, error) { return probeLock(dir) }}, {"Dir.ProbeLock", d.ProbeLock}} {
				held, err := within(t, p.what, p.probe)
				if held || (err != nil) != tt.probeErr || errors.Is(err, unix.ENXIO) {
					t.Errorf("%s = %v, %v; want not held, error %v", p.what, held, err, tt.probeErr)
				}
			}
			if _, err := os.Lstat(filepath.Join(dir, "target")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a symlink's target was created: %v", err)
			}
		})
	}
}

// TestDirTryLockCreatesNoLockWithoutState: a collector's lock never brings
// a lock file into a directory whose state file is gone.
func TestDirTryLockCreatesNoLockWithoutState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := openDir(t, dir)
	l, err := d.TryLock()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("TryLock without a state file = %v, %v; want fs.ErrNotExist", l, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, LockFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("TryLock created the lock file: %v", err)
	}
	// The directory can go, as its owner expects.
	if err := os.Remove(dir); err != nil {
		t.Errorf("remove the directory: %v", err)
	}
}

// TestDirTryLockRemovesCreatedLock: when the state file goes after the
// lock file was created (inside TryLock, or before DirLock.Read), the lock
// file goes too, and the lock is released; a lock file that was there
// before is left.
func TestDirTryLockRemovesCreatedLock(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		lockBefore bool
		inTryLock  bool // the state goes inside TryLock, after its flock
	}{
		{"inside TryLock", false, true},
		{"before Read", false, false},
		{"existing lock file kept", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			statePath, lock := filepath.Join(dir, FileName), filepath.Join(dir, LockFileName)
			write(t, statePath, validState)
			if tt.lockBefore {
				write(t, lock, "")
			}
			d := openDir(t, dir)
			if tt.inTryLock {
				d = d.WithAfterLock(func(string) { os.Remove(statePath) })
			}
			l, err := d.TryLock()
			if tt.inTryLock {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("TryLock = %v, want fs.ErrNotExist", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(statePath); err != nil {
					t.Fatal(err)
				}
				var s *State
				if _, err := l.Read(parseInto(&s)); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Read = %+v, %v; want fs.ErrNotExist", s, err)
				}
			}
			_, err = os.Lstat(lock)
			if exists := err == nil; exists != tt.lockBefore {
				t.Errorf("lock file exists: %v, want %v", exists, tt.lockBefore)
			}
			if held, err := probeLock(dir); err != nil || held {
				t.Errorf("ProbeLock = %v, %v; the lock must be released", held, err)
			}
		})
	}
}

// TestDirTryLockAgainstWriters: the collector's lock and a writer's lock
// in another process exclude each other, and a lock file swapped by
// another process between TryLock's flock and its check is noticed: the
// lock on the dead inode is dropped and the live one is found held.
func TestDirTryLockAgainstWriters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, FileName), validState)
	write(t, filepath.Join(dir, LockFileName), "")
	d := openDir(t, dir)

	a := startHelper(t, "lock", dir)
	a.Expect("waiting")
	a.Expect("locked")
	if _, err := within(t, "TryLock", d.TryLock); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock while a writer holds the lock: %v, want ErrLocked", err)
	}
	if held, err := d.ProbeLock(); err != nil || !held {
		t.Errorf("Dir.ProbeLock = %v, %v; want held", held, err)
	}
	a.Do("release")
	a.WaitOK()

	var swapper *testproc.Proc
	calls := 0
	swap := func(string) {
		calls++
		if calls == 1 {
			// We hold the flock on the old file; another process moves
			// it away and locks a fresh one under the name.
			swapper = startHelper(t, "swap-lock", dir)
			swapper.Expect("waiting")
			swapper.Expect("locked")
		}
	}
	// Not under within: the hook must run on the test's goroutine, and
	// TryLock never waits.
	if _, err := d.WithAfterLock(swap).TryLock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock across a swapped lock file: %v, want ErrLocked (the live lock is held)", err)
	}
	if calls != 1 {
		t.Errorf("flock succeeded %d times, want once (on the file that was swapped away)", calls)
	}
	old, err := os.Open(filepath.Join(dir, LockFileName+".old"))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := tryFlock(old)
	old.Close()
	if err != nil || !ok {
		t.Errorf("the swapped-away lock file is still locked (ok=%v err=%v)", ok, err)
	}
	swapper.Do("release")
	swapper.WaitOK()
	l, err := d.TryLock()
	if err != nil {
		t.Fatalf("TryLock after the writer released: %v", err)
	}
	if held, err := probeLock(dir); err != nil || !held {
		t.Errorf("ProbeLock = %v, %v; TryLock holds a dead inode", held, err)
	}
	if err := l.Release(); err != nil {
		t.Error(err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
}

// TestDirLease: the lease taken on a Dir's descriptor is the lease that
// other processes see, held until that descriptor is closed.
func TestDirLease(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	h := startHelper(t, "lease", dir)
	h.Expect("waiting")
	h.Expect("leased")
	// Closed by the test itself: closing drops the lease.
	fd, err := unix.Open(dir, sysat.DirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	d := datadir.NewDir(fd, dir)
	if held, err := d.ProbeLease(); err != nil || !held {
		t.Errorf("Dir.ProbeLease = %v, %v; want held by the helper", held, err)
	}
	if err := d.TryLease(); !errors.Is(err, ErrLocked) {
		t.Errorf("Dir.TryLease while the helper holds it: %v, want ErrLocked", err)
	}
	h.Do("close")
	h.WaitOK()

	if err := d.TryLease(); err != nil {
		t.Fatalf("Dir.TryLease: %v", err)
	}
	if _, err := TryLease(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("TryLease while a Dir holds the lease: %v, want ErrLocked", err)
	}
	if err := unix.Close(fd); err != nil {
		t.Fatal(err)
	}
	// Polled: a child forked meanwhile by another test holds a copy of
	// our descriptor until its exec (see waitFree).
	waitFree(t, dir)
}
