// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/internal/sysat"
	"github.com/stacklok/go-microvm/state"
)

// Report is the outcome of Collect.
type Report struct {
	// Root is the absolute path of the root swept.
	Root string
	// Reclaimed lists the orphans reclaimed, with the bytes freed for each
	// (with WithDryRun: the orphans that would be reclaimed).
	Reclaimed []Orphan
	// Kept lists every candidate not reclaimed, with its class and reason;
	// an orphan appears here when reclaiming it failed or was deferred.
	Kept []Candidate
	// Errors lists every failure, each naming its path and the operation
	// that failed; errors.Is and errors.As reach what each wraps.
	Errors []*fs.PathError
	// BytesFreed is the total allocated bytes freed, including trash left
	// by earlier runs.
	BytesFreed int64
	// Deferred is true when the deletion budget (or the context) ran out:
	// the rest, orphans or trash, is left for the next run, still
	// reclaimable.
	Deferred bool
	// DryRun echoes WithDryRun.
	DryRun bool
}

// Collect reclaims the orphans under root, as Orphans lists them, each
// decided again under its run lease and state lock, and removes only
// go-microvm's own files (and WithOwnedNames'); a killed Collect leaves
// nothing the next one does not finish. A failure in one directory goes to
// Report.Errors. Collect returns a nil report and ErrBusy when another
// collector of this user holds the root lock (see LockName), and an empty
// report when root does not exist, and an error for any other failure to
// lock root. When the lock file cannot be made for want of space (no inode
// left) or trusted (not a regular file, or not this user's alone: planted
// by another user), the run goes on without it, reclaiming
// in place and leaving the trash alone, with that error, naming the lock
// file, in Report.Errors.
func Collect(root string, opts ...Option) (*Report, error) {
	return CollectContext(context.Background(), root, opts...)
}

// CollectContext is Collect with a context. When ctx ends, no further
// orphan is started and removals stop where they are, as when the budget
// is spent; the report so far is returned with ctx's error.
func CollectContext(ctx context.Context, root string, opts ...Option) (*Report, error) {
	o := newOptions(opts)
	abs, rootDir, err := openRoot(root)
	rep := &Report{Root: abs, DryRun: o.dryRun}
	if rootDir == nil {
		if err != nil {
			return nil, err
		}
		return rep, nil
	}
	defer rootDir.Close()

	if o.dryRun {
		dryRun(ctx, rootDir, rep, o)
		return rep, ctx.Err()
	}

	// A collector that finds the lock held gives up at once: the other one
	// is doing the same work, and a VM creation must never wait for it.
	lockFd, err := lockRoot(rootDir, abs, true)
	if err != nil && !lockUnusable(err) {
		return nil, err
	}
	if err == nil {
		// Unlocked, not only closed: a child forked meanwhile holds a
		// copy of the descriptor until it execs.
		defer func() { _ = datadir.ReleaseFd(lockFd) }()
	}

	budget, cancel := ctx, context.CancelFunc(func() {})
	if o.budget > 0 {
		budget, cancel = context.WithTimeout(ctx, o.budget)
	}
	defer cancel()

	c := &collector{o: o, abs: abs, root: rootDir, ctx: ctx, budget: budget, rep: rep, ob: judge.NewObserver(o.now)}
	if err != nil {
		// Per-directory locks keep every reclaim safe without the root
		// lock; the trash is another collector's to use meanwhile.
		c.noTrash = true
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		c.addErr("lock root", filepath.Join(abs, LockName()), err)
	}
	c.run()
	if lockFd >= 0 {
		c.dropLock()
	}
	return rep, ctx.Err()
}

// dryRun fills rep from a scan, changing nothing.
func dryRun(ctx context.Context, rootDir *os.File, rep *Report, o *options) {
	res := scan(ctx, rootDir, rep.Root, o, probeOrphans)
	for _, c := range res.cands {
		if c.Class == ClassOrphan {
			rep.Reclaimed = append(rep.Reclaimed, c.orphan())
		} else {
			rep.Kept = append(rep.Kept, c.Candidate)
		}
	}
	rep.Errors = res.errs
}

// collector is one Collect run, holding the root lock.
type collector struct {
	o    *options
	abs  string
	root *os.File
	ctx  context.Context
	// budget bounds the deletion work; it ends with ctx, or earlier.
	budget context.Context
	ob     *judge.Observer

	mu  sync.Mutex
	rep *Report
	// trash is root's trash directory, opened (and created) on first use;
	// noTrash is set when it cannot be used.
	trash   *os.File
	noTrash bool
}

func (c *collector) run() {
	// Trash first: it is work an earlier run already committed to. A
	// trash this run may not use is left as it is, and reclaims go in
	// place.
	trashPath := filepath.Join(c.abs, TrashName)
	hadTrash := false
	// Without the root lock (noTrash already set) the trash is left alone.
	if !c.noTrash {
		if t, err := openTrash(c.root, c.abs, false); err == nil {
			hadTrash = true
			c.emptyTrash(t, trashPath)
			_ = t.Close()
		} else if worthReporting(err) {
			c.addErr("open trash", trashPath, err)
			c.noTrash = true
		}
	}

	res := scan(c.ctx, c.root, c.abs, c.o, probeOrphans)
	for _, e := range res.errs {
		c.addPathErr(e)
	}

	var orphans []scanned
	for _, cand := range res.cands {
		if cand.Class == ClassOrphan {
			orphans = append(orphans, cand)
		} else {
			c.keep(cand.Candidate)
		}
	}
	parallel(orphans, c.reclaim)
	parallel(res.remnants, c.removeRemnant)

	if c.trash != nil {
		_ = c.trash.Close()
	}
	// This user's trash is not left behind empty; a non-empty one is
	// work for the next run.
	if hadTrash || c.trash != nil {
		if err := sysat.Unlinkat(int(c.root.Fd()), TrashName, unix.AT_REMOVEDIR); err != nil && !isGone(err) && !isNotEmpty(err) {
			c.addErr("remove trash", trashPath, err)
		}
	}
	if c.ctx.Err() != nil {
		c.setDeferred()
	}
	slices.SortFunc(c.rep.Reclaimed, func(a, b Orphan) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortFunc(c.rep.Kept, func(a, b Candidate) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortStableFunc(c.rep.Errors, func(a, b *fs.PathError) int { return cmp.Compare(a.Path, b.Path) })
}

// dropLock removes the root lock file, still holding it, when the run
// leaves nothing for the next one, so a root without VMs is left as found.
// It must be the last act under the lock: a waiter then starts over on a
// new file (see lockRoot).
func (c *collector) dropLock() {
	if len(c.rep.Kept) > 0 || c.rep.Deferred {
		return
	}
	var st unix.Stat_t
	if err := sysat.Fstatat(int(c.root.Fd()), TrashName, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && int(st.Uid) == os.Geteuid() {
		return
	}
	if err := sysat.Unlinkat(int(c.root.Fd()), LockName(), 0); err != nil && !isGone(err) {
		c.addErr("remove root lock", filepath.Join(c.abs, LockName()), err)
	}
}

// addErr records the failure err of op on path in the report and logs it.
func (c *collector) addErr(op, path string, err error) {
	c.addPathErr(pathError(op, path, err))
}

func (c *collector) addPathErr(pe *fs.PathError) {
	c.o.logger.Warn("gc: error", "path", pe.Path, "op", pe.Op, "error", pe.Err)
	c.mu.Lock()
	c.rep.Errors = append(c.rep.Errors, pe)
	c.mu.Unlock()
}

func (c *collector) keep(cand Candidate) {
	c.o.logger.Debug("gc: kept", "path", cand.Path, "class", cand.Class, "reason", cand.Reason, "detail", cand.Detail)
	c.mu.Lock()
	c.rep.Kept = append(c.rep.Kept, cand)
	c.mu.Unlock()
}

func (c *collector) setDeferred() {
	c.mu.Lock()
	c.rep.Deferred = true
	c.mu.Unlock()
}

// rootTrash returns root's trash directory, creating it on first use, or
// nil when this run may not use one and reclaims in place.
func (c *collector) rootTrash() *os.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.trash == nil && !c.noTrash {
		var err error
		c.trash, err = openTrash(c.root, c.abs, true)
		c.noTrash = err != nil
		if err != nil {
			c.o.logger.Info("gc: reclaiming in place", "error", err)
		}
	}
	return c.trash
}

// outcomeKind says how the reclaim of one orphan ended.
type outcomeKind int

const (
	// outcomeReclaimed: its state file is gone, removed by this run.
	outcomeReclaimed outcomeKind = iota
	// outcomeKept: it was not reclaimed; the verdict under the locks, or
	// the error that stopped the reclaim, says why.
	outcomeKept
	// outcomeGone: its state file, or the whole data directory, went
	// while this run looked, removed by someone else (an embedder's own
	// clean-up). It is reported as reclaimed, with nothing freed here.
	outcomeGone
)

// outcome is how the reclaim of one orphan ended.
type outcome struct {
	kind outcomeKind
	// orphan is what was reclaimed (outcomeReclaimed).
	orphan Orphan
	// kept is the candidate as kept, with its verdict under the locks
	// (outcomeKept).
	kept Candidate
	// err is what stopped the reclaim of a kept candidate; nil when its
	// verdict alone kept it.
	err error
	// tr is where the committed rootfs-work went, still to be deleted
	// (outcomeReclaimed).
	tr trashRef
}

func reclaimedAs(o Orphan) outcome { return outcome{kind: outcomeReclaimed, orphan: o} }

func keptAs(k Candidate, err error) outcome { return outcome{kind: outcomeKept, kept: k, err: err} }

func goneAlready() outcome { return outcome{kind: outcomeGone} }

// reclaim reclaims one orphan found by the scan, or records why not.
func (c *collector) reclaim(cand scanned) {
	if c.budget.Err() != nil {
		c.setDeferred()
		if c.ctx.Err() != nil {
			cand.Detail += "; deferred: interrupted"
		} else {
			cand.Detail += "; deferred: deletion budget spent"
		}
		c.keep(cand.Candidate)
		return
	}
	out := c.reclaimDir(cand)
	switch out.kind {
	case outcomeReclaimed:
		c.reclaimed(out.orphan)
	case outcomeGone:
		c.reclaimed(Orphan{Path: cand.Path, Reason: cand.Reason, PID: cand.PID})
	case outcomeKept:
		if out.err == nil {
			c.keep(out.kept)
			return
		}
		out.kept.Detail += "; not reclaimed: " + out.err.Error()
		c.keep(out.kept)
		c.addErr("reclaim", cand.Path, out.err)
	}
}

// reclaimed logs, reports and records the reclaimed orphan o.
func (c *collector) reclaimed(o Orphan) {
	c.o.logger.Info("gc: reclaimed", "path", o.Path, "reason", o.Reason, "pid", o.PID, "bytes", o.Bytes)
	if c.o.progress != nil {
		c.o.progress(Progress{Kind: ProgressReclaimed, Orphan: o})
	}
	c.mu.Lock()
	c.rep.Reclaimed = append(c.rep.Reclaimed, o)
	c.rep.BytesFreed += o.Bytes
	c.mu.Unlock()
}

// reclaimDir reclaims the data directory of cand: reclaimOpen removes its
// files, and it then removes the directory itself, and its parent when
// that leaves it empty. An orphan whose state file or directory someone
// else removed meanwhile is outcomeGone: ENOENT means already gone.
func (c *collector) reclaimDir(cand scanned) outcome {
	if c.o.hooks.reclaim != nil {
		c.o.hooks.reclaim(cand.Path)
	}
	parent, d, err := c.openDataDir(cand.rel, cand.Path)
	if parent != nil {
		defer parent.Close()
	}
	if isGone(err) {
		// Deleted by someone else (an embedder's own clean-up) since the
		// scan: reclaimed all the same, with nothing freed here.
		return goneAlready()
	}
	if err != nil {
		return keptAs(cand.Candidate, err)
	}
	defer closeLeased(d)
	if cand.leftover {
		return c.reclaimLeftover(cand, parent, d)
	}
	out := c.reclaimOpen(cand, d)
	if out.kind == outcomeKept && removed(d) {
		// Kept only because the whole directory went while we looked.
		return goneAlready()
	}
	if out.kind != outcomeReclaimed {
		// A kept directory stays, a gone one is someone else's to
		// remove.
		return out
	}
	// Committed: from here on everything is clean-up. The directory goes
	// (root never does) before its rootfs-work is deleted from the trash,
	// so a run cut short in that long removal leaves trash for the next
	// one, not an empty directory no later run could tell from one an
	// embedder has just made.
	if cand.rel != "." {
		c.removeDataDir(parent, d, cand.rel, cand.Path)
	}
	if out.tr.dir != nil {
		if c.o.hooks.emptying != nil {
			c.o.hooks.emptying(cand.Path)
		}
		more, _ := c.removeTree(out.tr.dir, out.tr.name, out.tr.path, cand.Path)
		out.orphan.Bytes += more
	}
	return out
}

// openDataDir opens the data directory at rel, and its parent unless rel
// is root itself ("."), without following a symlink. parent is returned
// open whenever it was opened, even with an error about the directory.
func (c *collector) openDataDir(rel, path string) (parent, d *os.File, err error) {
	if rel == "." {
		d, err = fstree.OpenDir(c.root, ".")
		return nil, d, err
	}
	parent, err = fstree.OpenDir(c.root, filepath.Dir(rel))
	if err != nil {
		return nil, nil, err
	}
	d, err = openDirAt(parent, filepath.Base(rel), path)
	return parent, d, err
}

// removeDataDir removes the data directory d at rel, whose files are gone,
// from its parent, and then that parent when it is strictly below root and
// left empty. A directory something else still fills is left, silently:
// what is in it is not go-microvm's to remove.
func (c *collector) removeDataDir(parent, d *os.File, rel, path string) {
	// A collection over D itself (runner.NewClaim's default root) that
	// kept it may have left its lock file there.
	dropIdleLock(d, path)
	// D goes while the lease is still held: a creator waiting for the
	// lease finds, once it gets it, that the path no longer names the
	// directory it locked, and starts over on a fresh one.
	if err := sysat.Unlinkat(int(parent.Fd()), filepath.Base(rel), unix.AT_REMOVEDIR); err != nil {
		if !isNotEmpty(err) && !isGone(err) {
			c.addErr("remove", path, err)
		}
		return
	}
	up := filepath.Dir(rel)
	if up == "." {
		// The parent is root, which is never removed.
		return
	}
	gp, err := fstree.OpenDir(c.root, filepath.Dir(up))
	if err != nil {
		// The parent stays, which costs only an empty directory.
		return
	}
	defer gp.Close()
	unlock, ok := lockEmptyParent(gp, filepath.Base(up), filepath.Join(c.abs, up))
	if !ok {
		return
	}
	defer unlock()
	switch err := sysat.Unlinkat(int(gp.Fd()), filepath.Base(up), unix.AT_REMOVEDIR); {
	case err == nil, isGone(err):
	case isNotEmpty(err):
		// Something else fills it: not go-microvm's to remove.
	default:
		c.addErr("remove", filepath.Join(c.abs, up), err)
	}
}

// removeRemnant removes what a reclaim cut short after its commit leaves at
// rel: a directory holding only a state lock file and temporary saves. It
// takes the lease and state lock first, so a creator at work there keeps it.
func (c *collector) removeRemnant(rel string) {
	if c.budget.Err() != nil {
		c.setDeferred()
		return
	}
	path := filepath.Join(c.abs, rel)
	parent, d, err := c.openDataDir(rel, path)
	if parent != nil {
		defer parent.Close()
	}
	if err != nil {
		return
	}
	defer closeLeased(d)
	sd := dirOf(d, path)
	if sd.TryLease() != nil || c.verifyPath(rel, d) != nil {
		return
	}
	restore, err := makeWritable(d, path)
	if err != nil {
		return
	}
	defer restore()
	sl, err := sd.TryLock()
	if err != nil {
		return
	}
	names, ok := remnantFiles(d)
	if !ok {
		// The lock file is the one to let go; nothing was changed.
		_ = sl.Release()
		return
	}
	var freed int64
	for _, name := range names {
		var st unix.Stat_t
		if sysat.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || !sysat.IsRegular(&st) {
			continue
		}
		if err := sysat.Unlinkat(int(d.Fd()), name, 0); err != nil && !isGone(err) {
			c.addErr("unlink", filepath.Join(path, name), err)
			continue
		}
		freed += freedBy(&st)
	}
	if err := sl.Release(); err != nil {
		c.addErr("unlock", filepath.Join(path, state.LockFileName), err)
	}
	c.removeDataDir(parent, d, rel, path)
	c.o.logger.Info("gc: removed what a reclaim cut short left of a data directory", "path", path, "bytes", freed)
	c.addFreed(freed)
}

// remnantFiles lists the files of d, the state lock last, when they are
// only a state lock file and temporary saves; ok is false otherwise.
func remnantFiles(d *os.File) (names []string, ok bool) {
	all, err := dirNames(d)
	if err != nil {
		return nil, false
	}
	hasLock := false
	for _, name := range all {
		tmp, _ := filepath.Match(state.TempPattern, name)
		switch {
		case name == state.LockFileName:
			hasLock = true
		case name == LockName():
			// An idle collector lock goes with the directory.
		case tmp:
			names = append(names, name)
		default:
			return nil, false
		}
	}
	return append(names, state.LockFileName), hasLock
}

// lockEmptyParent flocks the emptied parent name across its removal; one
// flocked by someone else (an embedder's lock, a creator's lease) is theirs:
// ok is false and it stays.
func lockEmptyParent(parent *os.File, name, path string) (unlock func(), ok bool) {
	dir, err := openDirAt(parent, name, path)
	if err != nil {
		// Gone, or not a directory: nothing of ours to remove.
		return nil, false
	}
	if err := sysat.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		// Held elsewhere, or the lock cannot be taken: either way the
		// directory stays, which costs only an empty directory.
		_ = dir.Close()
		return nil, false
	}
	return func() { closeLeased(dir) }, true
}

// closeLeased drops the flock this process took on d, then closes d. The
// explicit unlock frees it at once: a child forked meanwhile holds a copy
// of d until its exec, which would keep the lock held after Collect
// returned.
func closeLeased(d *os.File) {
	_ = sysat.Flock(int(d.Fd()), unix.LOCK_UN)
	_ = d.Close()
}

// removed reports whether the directory d has been deleted.
func removed(d *os.File) bool {
	var st unix.Stat_t
	err := sysat.Fstat(int(d.Fd()), &st)
	return err == nil && st.Nlink == 0
}

// reclaimOpen reclaims the data directory d of cand, up to and including
// its own files; reclaimDir removes d itself. It takes the locks, in the
// order a creator takes them (lease, then state lock), and hands over to
// reclaimLocked.
func (c *collector) reclaimOpen(cand scanned, d *os.File) outcome {
	kept, path := cand.Candidate, cand.Path

	restore, out, ok := leaseWritable(d, path, kept, "run lease is held")
	if !ok {
		return out
	}
	defer restore()
	sd := dirOf(d, path)

	// The state lock is taken without ever leaving a lock file behind in
	// a directory whose state is gone: an owner deleting its directory
	// meanwhile must not find one brought back.
	sl, err := sd.TryLock()
	switch {
	case errors.Is(err, state.ErrLocked):
		return keptAs(relabel(kept, ClassBusy, ReasonStateLocked, "state lock is held"), nil)
	case errors.Is(err, fs.ErrNotExist):
		return goneAlready()
	case err != nil:
		return keptAs(unreadable(kept, err), nil)
	}
	defer func() {
		// The fd is closed either way, so the lock is gone; a failed
		// unlock is still reported, as it says the state dir misbehaves.
		if err := sl.Release(); err != nil {
			c.addErr("unlock", filepath.Join(path, state.LockFileName), err)
		}
	}()
	if c.o.hooks.stateLocked != nil {
		c.o.hooks.stateLocked(path)
	}
	return c.reclaimLocked(cand, d, sl)
}

// reclaimLocked reclaims d's files under its lease and state lock: it
// decides again, proves the path still names d, lets the embedder keep it
// or remove what it owns, and commits.
func (c *collector) reclaimLocked(cand scanned, d *os.File, sl *datadir.DirLock) outcome {
	rel, path := cand.rel, cand.Path
	// Decide again under both locks: between the scan and now a writer may
	// have changed the state, and nobody can change it any more.
	now, err := c.decideLocked(sl, path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return goneAlready()
	case err != nil:
		return keptAs(unreadable(cand.Candidate, err), nil)
	case now.Class != ClassOrphan:
		now.Detail += " (changed during the sweep)"
		return keptAs(now, nil)
	}
	if c.o.hooks.locked != nil {
		c.o.hooks.locked(path)
	}
	if err := c.verifyPath(rel, d); err != nil {
		return keptAs(now, err)
	}
	if k := c.embedderFirst(d, rel, now); k != nil {
		return keptAs(*k, nil)
	}

	freed, tr, err := c.commit(d, path, sl)
	if errors.Is(err, errLeftInPlace) {
		// What was removed is freed; the rest is reported, and stays an
		// orphan for the next run, its state file still there.
		c.mu.Lock()
		c.rep.BytesFreed += freed
		c.mu.Unlock()
		now.Detail += "; " + err.Error()
		return keptAs(now, nil)
	}
	if err != nil {
		return keptAs(now, err)
	}
	out := reclaimedAs(Orphan{Path: path, Reason: now.Reason, PID: now.PID, Bytes: freed})
	out.tr = tr
	return out
}

// decideLocked reads the state through the held state lock sl and
// classifies the data directory at path afresh, with a new process lookup.
// An error wrapping fs.ErrNotExist means the state file is gone.
func (c *collector) decideLocked(sl *datadir.DirLock, path string) (Candidate, error) {
	var s *state.State
	fi, err := sl.Read(parseInto(&s))
	if err != nil {
		return Candidate{}, err
	}
	f := c.ob.Bare()
	f.State, f.StateModTime = s, fi.ModTime
	c.ob.LookupProcess(&f)
	return candidateFrom(path, f, c.o.policy()), nil
}

// unreadable relabels c as unreadable because of err.
func unreadable(c Candidate, err error) Candidate {
	k := relabel(c, ClassUnreadable, ReasonUnreadable, err.Error())
	k.Err = err
	return k
}

// leaseWritable takes the lease on d itself (an open file description of
// this process alone, held until d is closed; verifyPath proves later that
// the path names d), then lets a collector that is not root reclaim a
// read-only directory it owns, as released go-microvm's own removal does.
// Unless ok, out says why d is kept; otherwise restore puts d's mode back
// unless d goes.
func leaseWritable(d *os.File, path string, kept Candidate, held string) (restore func(), out outcome, ok bool) {
	switch err := dirOf(d, path).TryLease(); {
	case errors.Is(err, state.ErrLocked):
		return nil, keptAs(relabel(kept, ClassLive, ReasonLeaseHeld, held), nil), false
	case err != nil:
		return nil, keptAs(kept, err), false
	}
	restore, err := makeWritable(d, path)
	if err != nil {
		return nil, keptAs(kept, err), false
	}
	return restore, outcome{}, true
}

func relabel(c Candidate, class Class, reason Reason, detail string) Candidate {
	c.Class, c.Reason, c.Detail = class, reason, detail
	return c
}

// verifyPath checks that rel, walked down from root without following a
// symlink, still leads to d. The locks were taken by path; this proves the
// path named d, reached without a symlink, after they were taken, so the
// locks guard d. Every deletion below is relative to d, so a symlink
// swapped in later changes nothing of what is deleted.
func (c *collector) verifyPath(rel string, d *os.File) error {
	again, err := fstree.OpenDir(c.root, rel)
	if err != nil {
		return fmt.Errorf("verify data directory: %w", err)
	}
	defer again.Close()
	same, err := sameFile(again, d)
	if err != nil {
		return fmt.Errorf("verify data directory: %w", err)
	}
	if !same {
		return errors.New("verify data directory: path no longer names the directory that was locked")
	}
	return nil
}

// trashRef is where a committed rootfs-work went: name in root's trash
// dir, at path; dir is nil when it was removed in place, or there was none.
type trashRef struct {
	dir        *os.File
	path, name string
}

// errLeftInPlace stops a commit whose rootfs-work, removed in place, is
// not all gone: the budget ran out, or something in it stays (a mount
// point, a live data directory, a failure), reported on its own.
var errLeftInPlace = errors.New("rootfs-work partly removed in place; the rest is left for the next run")

// commit moves d's rootfs-work into the trash (or removes it in place), then
// go-microvm's files, the state file last: everything before can be
// repeated by the next run. It returns the bytes freed and where
// rootfs-work went.
func (c *collector) commit(d *os.File, path string, sl *datadir.DirLock) (int64, trashRef, error) {
	freed, tr, err := c.moveRootfsWork(d, path)
	if err != nil {
		return freed, tr, err
	}
	names, err := ownedFiles(d)
	if err != nil {
		return freed, tr, fmt.Errorf("list data directory: %w", err)
	}
	for _, name := range names {
		var st unix.Stat_t
		err := sysat.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return freed, tr, &fs.PathError{Op: "lstat", Path: filepath.Join(path, name), Err: err}
		}
		// go-microvm writes these as regular files; anything else under
		// the name is not ours. A state file that is not regular was
		// never an orphan: it was read under the lock.
		if !sysat.IsRegular(&st) {
			continue
		}
		if err := sysat.Unlinkat(int(d.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			if name == state.FileName {
				return freed, tr, &fs.PathError{Op: "unlink", Path: filepath.Join(path, name), Err: err}
			}
			c.addErr("unlink", filepath.Join(path, name), err)
			continue
		}
		freed += freedBy(&st)
	}
	if err := sl.Release(); err != nil {
		c.addErr("unlock", filepath.Join(path, state.LockFileName), err)
	}
	return freed, tr, nil
}

// moveRootfsWork renames d/rootfs-work into root's trash, or where it cannot
// or must not (see movable) removes it in place, returning the bytes freed
// and errLeftInPlace when some of it stays.
func (c *collector) moveRootfsWork(d *os.File, path string) (int64, trashRef, error) {
	wpath := filepath.Join(path, rootfsWorkName)
	var st unix.Stat_t
	if err := sysat.Fstatat(int(d.Fd()), rootfsWorkName, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		return 0, trashRef{}, nil
	}
	// Moving a directory to another parent rewrites its "..": it must be
	// writable too.
	if w, err := openDirAt(d, rootfsWorkName, wpath); err == nil {
		_, werr := makeWritable(w, w.Name())
		_ = w.Close()
		if werr != nil {
			return 0, trashRef{}, werr
		}
	}
	if t := c.rootTrash(); t != nil && c.movable(d, wpath) {
		name := trashEntryName()
		err := sysat.Renameat(int(d.Fd()), rootfsWorkName, int(t.Fd()), name)
		if err == nil {
			return 0, trashRef{dir: t, path: filepath.Join(c.abs, TrashName, name), name: name}, nil
		}
		// ENOENT is either side: rootfs-work removed by someone else
		// since the look (nothing to move), or the trash itself.
		if serr := sysat.Fstatat(int(d.Fd()), rootfsWorkName, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(serr, unix.ENOENT) {
			return 0, trashRef{}, nil
		}
		// Otherwise (another filesystem, EXDEV, say) a rename cannot do,
		// and copying would be the very cost being avoided.
		c.o.logger.Debug("gc: removing in place", "path", wpath, "error", err)
	}
	freed, gone := c.removeTree(d, rootfsWorkName, wpath, path)
	if !gone {
		return freed, trashRef{}, errLeftInPlace
	}
	return freed, trashRef{}, nil
}

// movable reports whether d's rootfs-work may go into the trash: a look
// through it finds no live VM's data directory, no mount point and nothing
// unreadable, which would have to stay at their paths.
func (c *collector) movable(d *os.File, wpath string) bool {
	res, err := c.treeOptions().InUseAt(c.budget, d, rootfsWorkName, wpath)
	return err == nil && len(res.InUse) == 0 && len(res.Mounts) == 0 && len(res.Errors) == 0
}
