// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/internal/sysat"
	"github.com/stacklok/go-microvm/state"
)

// Collector-owned names. Nothing else ever uses a name starting with
// OwnPrefix, so the search for data directories never enters them.
const (
	// TrashName is the trash directory. root/.go-microvm-gc-trash receives
	// each reclaimed rootfs-work before it is deleted, when it is a
	// directory of the collector's user that no other user may enter, on
	// root's own mount; otherwise the collector reclaims in place.
	TrashName = ".go-microvm-gc-trash"
	// OwnPrefix starts every collector-owned name; such names are never
	// candidates.
	OwnPrefix = ".go-microvm-gc"
)

// LockName returns the name of this user's root lock,
// .go-microvm-gc-<euid>.lock: one collector of each user per root holds
// it, so that collectors of different users never lock each other out.
func LockName() string { return fmt.Sprintf("%s-%d.lock", OwnPrefix, os.Geteuid()) }

// errOpenToOthers refuses a reserved file or directory other users may
// open: they could read what passes through it, or hold a lock on it.
var errOpenToOthers = errors.New("open to other users")

// checkOwn returns nil when st, of the reserved name at path, is this
// user's and closed to every other user; otherwise an error saying why.
func checkOwn(st *unix.Stat_t, path string) error {
	switch {
	case int(st.Uid) != os.Geteuid():
		return &fs.PathError{Op: "use", Path: path, Err: fmt.Errorf("%w: owned by uid %d", fs.ErrPermission, st.Uid)}
	case st.Mode&0o077 != 0:
		return &fs.PathError{Op: "use", Path: path, Err: fmt.Errorf("%w: mode %#o", errOpenToOthers, st.Mode&0o7777)}
	}
	return nil
}

// trashSeq sets apart the trash entries this process makes.
var trashSeq atomic.Uint64

// openTrash opens root's trash, making it (0700) if create; an error
// unless it is this user's alone and not a mount point.
func openTrash(root *os.File, abs string, create bool) (*os.File, error) {
	path := filepath.Join(abs, TrashName)
	if create {
		if err := sysat.Mkdirat(int(root.Fd()), TrashName, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, &fs.PathError{Op: "mkdir", Path: path, Err: err}
		}
	}
	t, err := openDirAt(root, TrashName, path)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	err = sysat.Fstat(int(t.Fd()), &st)
	switch {
	case err != nil:
		err = &fs.PathError{Op: "fstat", Path: path, Err: err}
	case !fstree.SameMount(root, t):
		err = &fs.PathError{Op: "use", Path: path, Err: fstree.ErrMountPoint}
	default:
		err = checkOwn(&st, path)
	}
	if err != nil {
		_ = t.Close()
		return nil, err
	}
	return t, nil
}

// removeTree deletes name below dir within the budget and returns the bytes
// freed and whether name is gone; failures are reported under owner.
func (c *collector) removeTree(dir *os.File, name, display, owner string) (int64, bool) {
	if c.budget.Err() != nil {
		c.deferred.Store(true)
		return 0, false
	}
	res, err := treeOptions(c.ob, c.o.policy()).RemoveAt(c.budget, dir, name, display)
	switch {
	case errors.Is(err, fstree.ErrBudget):
		c.deferred.Store(true)
	case err != nil && len(res.Errors) == 0 && len(res.Mounts) == 0 && len(res.InUse) == 0:
		c.addErr("empty trash", owner, err)
	}
	report := func(at string, err error) {
		if owner == display {
			c.addErr("remove", at, err)
		} else {
			c.addErr("remove", owner, fmt.Errorf("%s: %w", at, err))
		}
	}
	// A nested live data directory or a mount point stays, reported.
	for _, u := range res.InUse {
		report(u.Path, fmt.Errorf("%w: %s", fstree.ErrInUse, u.Reason))
	}
	for _, e := range res.Errors {
		c.addErr("remove", owner, e)
	}
	for _, m := range res.Mounts {
		report(m, fstree.ErrMountPoint)
	}
	var st unix.Stat_t
	serr := sysat.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return res.Bytes, errors.Is(serr, unix.ENOENT)
}

// treeOptions keeps, in a tree removed or measured, a nested data
// directory a collector would keep as live or cannot judge.
func treeOptions(ob *judge.Observer, p judge.Policy) fstree.Options {
	return fstree.Options{InUseMarker: state.FileName, InUse: func(fd int, path string) string {
		d := datadir.NewDir(fd, path)
		if held, err := d.ProbeLease(); held {
			return "nested data directory: run lease is held"
		} else if err != nil {
			return "nested data directory: " + err.Error()
		}
		if held, err := d.ProbeLock(); held {
			return "nested data directory: state lock is held"
		} else if err != nil {
			return "nested data directory: " + err.Error()
		}
		f, err := readFacts(ob, d.Read)
		if err != nil {
			return ""
		}
		ob.LookupProcess(&f)
		// A runner this collector cannot judge may be alive: kept.
		switch v := judge.Classify(f, p); {
		case v.Class == ClassLive,
			v.Class == ClassUnknown && (v.Reason == ReasonOtherPIDNamespace || v.Reason == ReasonPIDNamespaceUnknown):
			return "nested data directory: " + string(v.Reason)
		}
		return ""
	}}
}

// parallel calls fn for every item, at most 4×GOMAXPROCS at once (each
// waits on the disk), one at a time in order on one CPU, and waits.
func parallel[T any](items []T, fn func(T)) {
	n := runtime.GOMAXPROCS(0)
	if n > 1 {
		n *= 4
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(it)
		})
	}
	wg.Wait()
}
