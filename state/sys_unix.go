// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/sysat"
)

// Lease is the run lease: an exclusive flock on the data directory itself,
// held while any process keeps a copy of its descriptor (see File). Keep it
// reachable while it must be held: a Lease garbage collected without Close
// drops the lease and is logged with slog.
type Lease struct {
	f       *os.File
	closed  bool
	cleanup runtime.Cleanup
	kept    string // the key under which Keep holds it, or ""
}

// kept holds the leases of Keep.
var kept = struct {
	sync.Mutex
	m map[string]*Lease
}{m: map[string]*Lease{}}

// Keep holds l open until Close or process exit, as this process's claim
// on dataDir (runner.SpawnProcess finds it with Kept). A lease kept earlier
// for dataDir is closed.
func (l *Lease) Keep(dataDir string) error {
	key, err := filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("keep lease of %s: %w", dataDir, err)
	}
	kept.Lock()
	old := kept.m[key]
	if l.kept != "" && kept.m[l.kept] == l {
		delete(kept.m, l.kept) // kept under one path at a time
	}
	kept.m[key] = l
	l.kept = key
	kept.Unlock()
	if old != nil && old != l {
		return old.Close()
	}
	return nil
}

// Kept returns the lease this process keeps on dataDir (see Keep), or nil:
// the one kept under that path, else one that locks the directory dataDir
// names (another spelling of the same directory, through a symlink say).
// Closing it lets go of the claim: the run marker stays, so once no runner
// holds the lease either, a collection reclaims dataDir.
func Kept(dataDir string) *Lease {
	key, err := filepath.Abs(dataDir)
	if err != nil {
		return nil
	}
	kept.Lock()
	defer kept.Unlock()
	if l := kept.m[key]; l != nil || len(kept.m) == 0 {
		return l
	}
	named, err := os.Stat(key)
	if err != nil {
		return nil
	}
	for _, l := range kept.m {
		if locked, err := l.f.Stat(); err == nil && os.SameFile(locked, named) {
			return l
		}
	}
	return nil
}

// leaseLeaked makes a dropped Lease loud: the *os.File's own cleanup is
// about to close it, dropping the lease.
func leaseLeaked(f *os.File) {
	// Control fails on a file closed on purpose, through File().Close().
	if rc, err := f.SyscallConn(); err != nil || rc.Control(func(uintptr) {}) != nil {
		return
	}
	const msg = "state.Lease garbage collected without Close: the run lease is dropped; keep the Lease reachable while it must be held"
	slog.Error(msg, "dir", f.Name())
}

// TryLease takes the lease on dataDir without blocking. It returns an error
// matching ErrLocked if the lease is held (for an instant, also by a
// concurrent ProbeLease), one wrapping fs.ErrNotExist if dataDir is
// missing, and an *fs.PathError if it is a symlink or not a directory.
func TryLease(dataDir string) (*Lease, error) { return tryLease(dataDir, nil) }

// tryLease is TryLease; afterLock lets tests replace the directory between
// the flock and the inode check, a window otherwise hit only by luck.
func tryLease(dataDir string, afterLock func(dataDir string)) (*Lease, error) {
	fd, err := datadir.TryLeasePath(dataDir, afterLock)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), dataDir)
	l := &Lease{f: f}
	// The cleanup holds f, not l, to tell File().Close() from a leak.
	l.cleanup = runtime.AddCleanup(l, leaseLeaked, f)
	return l, nil
}

// ProbeLease reports whether the lease on dataDir is held right now; it
// creates nothing, so it works on a read-only filesystem. A missing dataDir
// is not held. For an instant the probe holds the lease itself.
func ProbeLease(dataDir string) (held bool, err error) {
	fd, err := sysat.Openat(unix.AT_FDCWD, dataDir, sysat.DirFlags, 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: dataDir, Err: err}
	}
	defer unix.Close(fd)
	return datadir.NewDir(fd, dataDir).ProbeLease()
}

// File returns the locked directory descriptor, for exec.Cmd.ExtraFiles: a
// child that inherits it holds the lease. Closing it is closing the Lease.
func (l *Lease) File() *os.File { return l.f }

// Close closes this process's copy of the descriptor; the lease stays held
// while a child's inherited copy lives. Safe to call twice and on nil.
func (l *Lease) Close() error {
	if l == nil {
		return nil
	}
	// Never flock(LOCK_UN): it would drop the lease under a runner that
	// shares the open file description. kept's lock orders Closes.
	kept.Lock()
	done := l.closed
	l.closed = true
	if l.kept != "" && kept.m[l.kept] == l {
		delete(kept.m, l.kept)
	}
	kept.Unlock()
	if done {
		return nil
	}
	l.cleanup.Stop()
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close lease: %w", err)
	}
	return nil
}

// The state lock is datadir's descriptor, re-checked by inode.
type heldLock = int

var (
	tryLockPath = datadir.TryLockPath
	unlockHeld  = datadir.ReleaseFd
)

// ReadFile reads and parses the state file at path. A missing file wraps
// fs.ErrNotExist; other failures are *fs.PathError, matching ErrNotRegular
// for anything but a regular file, or Parse's errors.
func ReadFile(path string) (*State, error) {
	var s *State
	_, err := datadir.ReadPath(path, func(data []byte) (err error) {
		s, err = Parse(data)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
