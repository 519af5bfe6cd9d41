// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/sysat"
)

// Lease is the run lease: an exclusive flock on the data directory itself.
//
// The lease is implemented with flock(2) on a descriptor of our own
// because it must be an inheritable descriptor handed to the runner
// through exec.Cmd.ExtraFiles. The descriptor is opened O_CLOEXEC, so no
// other exec inherits it by accident; ExtraFiles dups it into the child
// without O_CLOEXEC.
//
// The lock belongs to the open file description: it is held for as long as
// any process keeps a copy of the descriptor open, and the kernel drops it
// when the last copy is closed, however the holders end. The *os.File
// closes its descriptor when it is garbage collected, so keep the Lease
// reachable for as long as this process must hold it, and Close it when
// done. A Lease garbage collected without Close is a bug that would drop
// the lease silently: it is logged as an error with slog's default logger
// (key "dir").
type Lease struct {
	f       *os.File
	closed  bool
	cleanup runtime.Cleanup
	kept    string // the key under which Keep holds it, or ""
}

// kept holds the leases this process keeps as the creator of their data
// directories (see Keep), so they stay open until Close or exit.
var kept = struct {
	sync.Mutex
	m map[string]*Lease
}{m: map[string]*Lease{}}

// Keep makes l this process's claim on dataDir: a process-wide table keeps
// it open until Close or until this process exits, however it exits, so
// dataDir stays protected while its creator lives, and a runner started
// for dataDir inherits it (runner.SpawnProcess looks it up with Kept). A
// lease kept earlier under the same directory is closed: two leases of one
// process cannot both hold one directory, so that one guards a directory
// no longer at dataDir.
func (l *Lease) Keep(dataDir string) error {
	key, err := filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("keep lease of %s: %w", dataDir, err)
	}
	kept.Lock()
	old := kept.m[key]
	kept.m[key] = l
	l.kept = key
	kept.Unlock()
	if old != nil && old != l {
		return old.Close()
	}
	return nil
}

// Kept returns the lease this process keeps on dataDir (see Keep), or nil.
// Closing it lets go of the claim: the run marker stays, so once no runner
// holds the lease either, a collection reclaims dataDir.
func Kept(dataDir string) *Lease {
	key, err := filepath.Abs(dataDir)
	if err != nil {
		return nil
	}
	kept.Lock()
	defer kept.Unlock()
	return kept.m[key]
}

// newLease wraps the locked directory f and arms the leak report.
func newLease(f *os.File) *Lease {
	l := &Lease{f: f}
	// The cleanup holds f, not l, so it can still tell a Lease closed
	// through File().Close() (no leak) from one that was dropped.
	l.cleanup = runtime.AddCleanup(l, leaseLeaked, f)
	return l
}

// leaseLeaked reports a Lease that became unreachable while its
// descriptor was open. The *os.File's own cleanup then closes the
// descriptor, which drops the run lease under whoever relied on it; this
// makes that loud.
func leaseLeaked(f *os.File) {
	// Control fails on a closed file: closed through File().Close(),
	// released on purpose.
	if rc, err := f.SyscallConn(); err != nil || rc.Control(func(uintptr) {}) != nil {
		return
	}
	const msg = "state.Lease garbage collected without Close: the run lease is dropped; keep the Lease reachable while it must be held"
	slog.Error(msg, "dir", f.Name())
}

// AcquireLease takes the lease on dataDir, blocking until ctx is done. It
// polls every few milliseconds, opening dataDir anew each time. It returns
// ctx's error, wrapped, when ctx ends first; an error wrapping
// fs.ErrNotExist when dataDir does not exist or disappears while it waits
// (the caller decides whether to create it again); and an *fs.PathError
// when dataDir is a symlink or not a directory.
func AcquireLease(ctx context.Context, dataDir string) (*Lease, error) {
	t := time.NewTicker(retryDelay)
	defer t.Stop()
	for {
		l, err := TryLease(dataDir)
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("acquire lease on %s: %w", dataDir, ctx.Err())
		case <-t.C:
		}
	}
}

// TryLease takes the lease on dataDir without blocking: it opens dataDir
// without following a symlink, takes a non-blocking flock on that
// descriptor, and checks that dataDir still names the directory it locked,
// starting over when not. It returns an error matching ErrLocked if the lease is held
// (including, for an instant, by a concurrent ProbeLease), an error
// wrapping fs.ErrNotExist when dataDir does not exist, and an
// *fs.PathError for any other failure.
func TryLease(dataDir string) (*Lease, error) { return tryLease(dataDir, nil) }

// tryLease is TryLease; afterLock, when not nil, runs after each
// successful flock and before the inode check, so that tests can replace
// the directory inside the window that is otherwise a matter of luck.
func tryLease(dataDir string, afterLock func(dataDir string)) (*Lease, error) {
	for {
		f, err := os.OpenFile(dataDir, sysat.DirFlags, 0)
		if err != nil {
			return nil, fmt.Errorf("open lease directory: %w", err)
		}
		// f is a directory, never in non-blocking mode, and stays open
		// past the call: Fd changes nothing about it.
		err = datadir.NewDir(int(f.Fd()), dataDir).TryLease()
		if err != nil {
			// The error being returned is the one that matters.
			_ = f.Close()
			return nil, err
		}
		if afterLock != nil {
			afterLock(dataDir)
		}
		locked, err := f.Stat()
		if err != nil {
			// The error being returned is the one that matters.
			_ = f.Close()
			return nil, err
		}
		named, err := os.Lstat(dataDir)
		if err != nil {
			// The error being returned is the one that matters.
			_ = f.Close()
			return nil, fmt.Errorf("check lease directory: %w", err)
		}
		if os.SameFile(locked, named) {
			return newLease(f), nil
		}
		// The directory we locked was renamed or removed, and something
		// else now has its name: our lock would guard nothing.
		// Closing drops the lock; a lock fd has no data to lose.
		_ = f.Close()
	}
}

// File returns the locked directory descriptor, for exec.Cmd.ExtraFiles.
// Closing it is closing the Lease.
func (l *Lease) File() *os.File { return l.f }

// Close closes this process's descriptor WITHOUT unlocking. This is on
// purpose and must stay so: flock(LOCK_UN) acts on the open file
// description shared with every process that inherited the descriptor, so
// it would drop the lease under a runner that is still alive. Closing only
// our copy leaves the lease held while any inherited copy lives; when ours
// was the last copy, the kernel drops the lease. A kept lease leaves the
// table (see Keep). Safe to call twice, and on a nil Lease.
func (l *Lease) Close() error {
	if l == nil {
		return nil
	}
	// The table's lock also orders Closes of a kept lease from several
	// goroutines.
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
