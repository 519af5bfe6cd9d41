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
	"sync/atomic"
	"time"

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
	// the rest is left, reclaimable, for the next run.
	Deferred bool
	// DryRun echoes WithDryRun.
	DryRun bool
}

// Collect reclaims the orphans under root, as Orphans lists them, each
// decided again under its run lease and state lock, and removes only
// go-microvm's own files (and WithOwnedNames'); a killed Collect leaves
// nothing the next one does not finish. A failure in one directory goes to
// Report.Errors. Collect returns a nil report and ErrBusy when another
// collector of this user holds the root lock (see LockName), an empty
// report when root does not exist, and an error for any other failure to
// lock root but one: a lock file it cannot make (no space) or trust (not a
// regular file of this user's alone). Then it reclaims in place, leaving
// the trash alone, with that error, naming the lock file, in Report.Errors.
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
	c := &collector{o: o, abs: abs, root: rootDir, ctx: ctx, rep: rep, ob: judge.NewObserver(o.now)}
	if o.dryRun {
		orphans, _ := c.sweep()
		for _, cand := range orphans {
			rep.Reclaimed = append(rep.Reclaimed, cand.orphan())
		}
		return rep, ctx.Err()
	}

	// Held: give up at once; a VM creation must never wait for it.
	lockFd, err := lockRoot(rootDir, abs)
	if err != nil && !lockUnusable(err) {
		return nil, err
	}
	if err == nil {
		// Unlocked, not only closed: a child forked meanwhile holds a copy.
		defer func() { _ = datadir.ReleaseFd(lockFd) }()
	}

	c.budget = ctx
	if o.budget > 0 {
		var cancel context.CancelFunc
		c.budget, cancel = context.WithTimeout(ctx, o.budget)
		defer cancel()
	}
	if err != nil {
		// Per-directory locks keep reclaims safe; the trash is left alone.
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

// collector is one Collect run.
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
	// freed and deferred go into rep at the end of the run.
	freed    atomic.Int64
	deferred atomic.Bool
	// trash is root's trash, nil when noTrash: reclaim in place.
	trash   *os.File
	noTrash bool
}

func (c *collector) run() {
	// Trash first: it is work an earlier run already committed to.
	trashPath := filepath.Join(c.abs, TrashName)
	c.useTrash(false)
	var oldTrash int64 // the trash directory's own blocks, freed with it
	if c.trash != nil {
		var st unix.Stat_t
		if sysat.Fstat(int(c.trash.Fd()), &st) == nil {
			oldTrash = allocated(&st)
		}
		names, err := dirNames(c.trash)
		if err != nil {
			c.addErr("read trash", trashPath, err)
		}
		parallel(names, func(name string) {
			display := filepath.Join(trashPath, name)
			freed, _ := c.removeTree(c.trash, name, display, display)
			c.freed.Add(freed)
		})
	}

	orphans, remnants := c.sweep()
	if len(orphans) > 0 {
		c.useTrash(true)
	}
	parallel(orphans, c.reclaim)
	parallel(remnants, c.removeRemnant)

	// This user's trash is not left behind empty.
	if c.trash != nil {
		_ = c.trash.Close()
		err := sysat.Unlinkat(int(c.root.Fd()), TrashName, unix.AT_REMOVEDIR)
		switch {
		case err == nil:
			c.freed.Add(oldTrash)
		case !isGone(err) && !isNotEmpty(err):
			c.addErr("remove trash", trashPath, err)
		}
	}
	c.rep.BytesFreed += c.freed.Load()
	c.rep.Deferred = c.deferred.Load() || c.ctx.Err() != nil
	slices.SortFunc(c.rep.Reclaimed, func(a, b Orphan) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortFunc(c.rep.Kept, func(a, b Candidate) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortStableFunc(c.rep.Errors, func(a, b *fs.PathError) int { return cmp.Compare(a.Path, b.Path) })
}

// sweep scans root, reports the errors and the candidates kept, and
// returns the orphans and the remnants.
func (c *collector) sweep() (orphans []scanned, remnants []string) {
	w := &walk{ctx: c.ctx, o: c.o, mode: probeOrphans}
	w.run(c.root)
	for _, e := range w.errs {
		c.addErr(e.Op, e.Path, e)
	}
	slices.SortFunc(w.cands, func(a, b scanned) int { return cmp.Compare(a.Path, b.Path) })
	for _, cand := range w.cands {
		if cand.Class == ClassOrphan {
			orphans = append(orphans, cand)
		} else {
			c.keep(cand.Candidate)
		}
	}
	return orphans, w.remnants
}

// dropLock removes the root lock file, still holding it, when the run
// leaves nothing for the next one. It must be the last act under the lock.
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

func (c *collector) addErr(op, path string, err error) {
	pe := pathError(op, path, err)
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

// useTrash opens root's trash, making it if create, unless it is open or
// this run reclaims in place, as it does from a trash it may not use.
func (c *collector) useTrash(create bool) {
	if c.trash != nil || c.noTrash {
		return
	}
	t, err := openTrash(c.root, c.abs, create)
	switch {
	case err == nil:
		c.trash = t
	case errors.Is(err, fstree.ErrMountPoint) || errors.Is(err, errOpenToOthers):
		// For an operator to fix.
		c.addErr("open trash", filepath.Join(c.abs, TrashName), err)
		c.noTrash = true
	case create:
		c.o.logger.Info("gc: reclaiming in place", "error", err)
		c.noTrash = true
	}
}

// outcome is how one reclaim ended: gone (removed by another meanwhile),
// committed (orphan; trash names its rootfs-work's trash entry, if any), or
// kept, with the error that stopped it (nil when the verdict did).
type outcome struct {
	gone   bool
	orphan *Orphan
	trash  string
	kept   Candidate
	err    error
}

func (c *collector) reclaim(cand scanned) {
	if c.budget.Err() != nil {
		c.deferred.Store(true)
		if c.ctx.Err() != nil {
			cand.Detail += "; deferred: interrupted"
		} else {
			cand.Detail += "; deferred: deletion budget spent"
		}
		c.keep(cand.Candidate)
		return
	}
	runHook(c.o.hooks.reclaim, cand.Path)
	step := c.reclaimLocked
	if cand.leftover {
		step = c.reclaimLeftover
	}
	out := c.reclaimDir(cand, step)
	switch {
	case out.gone:
		c.reclaimed(Orphan{Path: cand.Path, Reason: cand.Reason, PID: cand.PID})
	case out.orphan != nil:
		c.reclaimed(*out.orphan)
	case out.err != nil:
		out.kept.Detail += "; not reclaimed: " + out.err.Error()
		c.keep(out.kept)
		c.addErr("reclaim", cand.Path, out.err)
	default:
		c.keep(out.kept)
	}
}

func (c *collector) reclaimed(o Orphan) {
	c.o.logger.Info("gc: reclaimed", "path", o.Path, "reason", o.Reason, "pid", o.PID, "bytes", o.Bytes)
	if c.o.progress != nil {
		c.o.progress(Progress{Kind: ProgressReclaimed, Orphan: o})
	}
	c.freed.Add(o.Bytes)
	c.mu.Lock()
	c.rep.Reclaimed = append(c.rep.Reclaimed, o)
	c.mu.Unlock()
}

// reclaimDir reclaims cand's directory by step under its lease, then
// removes it, its emptied parent, and its rootfs-work from the trash.
func (c *collector) reclaimDir(cand scanned, step func(scanned, *os.File) outcome) outcome {
	// For root itself (rel "."), parent is root, never removed.
	var d *os.File
	parent, err := fstree.OpenDir(c.root, filepath.Dir(cand.rel))
	if err == nil {
		defer parent.Close()
		d, err = openDirAt(parent, filepath.Base(cand.rel), cand.Path)
	}
	if isGone(err) {
		return outcome{gone: true}
	}
	if err != nil {
		return outcome{kept: cand.Candidate, err: err}
	}
	defer closeLeased(d)
	// The lease is on d itself; verifyPath proves later that the path names d.
	switch err := dirOf(d, cand.Path).TryLease(); {
	case errors.Is(err, state.ErrLocked):
		held := "run lease is held"
		if cand.leftover {
			held = "directory is flocked"
		}
		return outcome{kept: relabel(cand.Candidate, ClassLive, ReasonLeaseHeld, held)}
	case err != nil:
		return outcome{kept: cand.Candidate, err: err}
	}
	restore, err := makeWritable(d, cand.Path)
	if err != nil {
		return outcome{kept: cand.Candidate, err: err}
	}
	defer restore()
	out := step(cand, d)
	if !cand.leftover && !out.gone && out.orphan == nil && removed(d) {
		// Kept only because the whole directory went while we looked.
		return outcome{gone: true}
	}
	if out.orphan == nil {
		return out
	}
	// The directory goes first: a run cut short leaves trash, not an empty
	// directory no later run could tell from one an embedder just made.
	if cand.rel != "." {
		c.removeDataDir(parent, d, cand.rel, cand.Path)
	}
	if out.trash != "" {
		runHook(c.o.hooks.emptying, cand.Path)
		more, _ := c.removeTree(c.trash, out.trash, filepath.Join(c.abs, TrashName, out.trash), cand.Path)
		out.orphan.Bytes += more
	}
	return out
}

// removeDataDir removes the emptied data directory d at rel, its lease
// held, then its parent if strictly below root, empty and flocked by
// nobody else. A directory something else fills stays, silently.
func (c *collector) removeDataDir(parent, d *os.File, rel, path string) {
	// An idle collector lock, of a collection over d itself, goes with d.
	var st unix.Stat_t
	if sysat.Fstatat(int(d.Fd()), LockName(), &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		if fd, err := lockRoot(d, path); err == nil {
			_ = sysat.Unlinkat(int(d.Fd()), LockName(), 0)
			_ = unix.Close(fd)
		}
	}
	if err := sysat.Unlinkat(int(parent.Fd()), filepath.Base(rel), unix.AT_REMOVEDIR); err != nil {
		if !isNotEmpty(err) && !isGone(err) {
			c.addErr("remove", path, err)
		}
		return
	}
	up := filepath.Dir(rel)
	if up == "." {
		return
	}
	gp, err := fstree.OpenDir(c.root, filepath.Dir(up))
	if err != nil {
		return
	}
	defer gp.Close()
	p, err := openDirAt(gp, filepath.Base(up), up)
	if err != nil {
		return
	}
	defer closeLeased(p)
	if sysat.Flock(int(p.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		return
	}
	if err := sysat.Unlinkat(int(gp.Fd()), filepath.Base(up), unix.AT_REMOVEDIR); err != nil && !isGone(err) && !isNotEmpty(err) {
		c.addErr("remove", filepath.Join(c.abs, up), err)
	}
}

// removeRemnant removes what a reclaim cut short after its commit left at
// rel: a directory holding only a state lock file, temporary saves and an
// idle collector lock. It does so under its lease and state lock.
func (c *collector) removeRemnant(rel string) {
	if c.budget.Err() != nil {
		c.deferred.Store(true)
		return
	}
	path := filepath.Join(c.abs, rel)
	out := c.reclaimDir(scanned{Candidate: Candidate{Path: path}, rel: rel}, c.remnant)
	if out.orphan != nil {
		c.o.logger.Info("gc: removed what a reclaim cut short left of a data directory", "path", path, "bytes", out.orphan.Bytes)
	}
}

func (c *collector) remnant(cand scanned, d *os.File) outcome {
	if verifyPath(c.root, cand.rel, d) != nil {
		return outcome{}
	}
	sl, err := dirOf(d, cand.Path).TryLock()
	if err != nil {
		return outcome{}
	}
	defer c.release(sl, cand.Path)
	files, ok := remnantFiles(d)
	if !ok {
		return outcome{}
	}
	runHook(c.o.hooks.locked, cand.Path)
	// Only what was listed goes: anything made since, such as a released
	// Run's clone, which takes no lease, keeps the directory.
	var freed int64
	defer func() { c.freed.Add(freed) }() // what went counts, even if some stays
	for _, name := range files {
		var st unix.Stat_t
		regular := sysat.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && sysat.IsRegular(&st)
		switch err := sysat.Unlinkat(int(d.Fd()), name, 0); {
		case err == nil && regular:
			freed += freedBy(&st)
		case err != nil && !isGone(err):
			c.addErr("remove", filepath.Join(cand.Path, name), err)
			return outcome{}
		}
	}
	return outcome{orphan: &Orphan{Path: cand.Path, Bytes: freed}}
}

// remnantFiles lists the files of d, the state lock last, and reports
// whether d is a remnant: a state lock, temporary saves and at most an idle
// collector lock, which goes with the directory.
func remnantFiles(d *os.File) ([]string, bool) {
	names, err := dirNames(d)
	if err != nil || !slices.Contains(names, state.LockFileName) {
		return nil, false
	}
	var files []string
	for _, name := range names {
		tmp, _ := filepath.Match(state.TempPattern, name)
		var st unix.Stat_t
		switch {
		case tmp && sysat.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && sysat.IsRegular(&st):
			files = append(files, name)
		case name != state.LockFileName && name != LockName():
			return nil, false // not go-microvm's, or a save that is not a file
		}
	}
	return append(files, state.LockFileName), true
}

// closeLeased unlocks d, then closes it: a child forked meanwhile holds a
// copy of d until its exec.
func closeLeased(d *os.File) {
	_ = sysat.Flock(int(d.Fd()), unix.LOCK_UN)
	_ = d.Close()
}

func removed(d *os.File) bool {
	var st unix.Stat_t
	err := sysat.Fstat(int(d.Fd()), &st)
	return err == nil && st.Nlink == 0
}

// release drops the state lock sl; a failure says the directory misbehaves.
func (c *collector) release(sl *datadir.DirLock, path string) {
	if err := sl.Release(); err != nil {
		c.addErr("unlock", filepath.Join(path, state.LockFileName), err)
	}
}

// reclaimLocked takes d's state lock (never leaving a lock file where the
// state is gone), decides again under both locks, proves the path still
// names d, lets the embedder keep it or remove what it owns, and commits.
func (c *collector) reclaimLocked(cand scanned, d *os.File) outcome {
	path := cand.Path
	sl, err := dirOf(d, path).TryLock()
	switch {
	case errors.Is(err, state.ErrLocked):
		return outcome{kept: relabel(cand.Candidate, ClassBusy, ReasonStateLocked, "state lock is held")}
	case errors.Is(err, fs.ErrNotExist):
		return outcome{gone: true}
	case err != nil:
		return outcome{kept: unreadable(cand.Candidate, err)}
	}
	defer c.release(sl, path)
	runHook(c.o.hooks.stateLocked, path)
	f, err := readFacts(c.ob, sl.Read)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return outcome{gone: true}
	case err != nil:
		return outcome{kept: unreadable(cand.Candidate, err)}
	}
	c.ob.LookupProcess(&f)
	now := candidateFrom(path, f, c.o.policy())
	if now.Class != ClassOrphan {
		now.Detail += " (changed during the sweep)"
		return outcome{kept: now}
	}
	runHook(c.o.hooks.locked, path)
	if err := verifyPath(c.root, cand.rel, d); err != nil {
		return outcome{kept: now, err: err}
	}
	if k := c.embedderFirst(d, cand.rel, now); k != nil {
		return outcome{kept: *k}
	}
	freed, trash, err := c.commit(d, path)
	if errors.Is(err, errLeftInPlace) {
		// What went is freed; the rest stays an orphan for the next run.
		c.freed.Add(freed)
		now.Detail += "; " + err.Error()
		return outcome{kept: now}
	}
	if err != nil {
		return outcome{kept: now, err: err}
	}
	return outcome{orphan: &Orphan{Path: path, Reason: now.Reason, PID: now.PID, Bytes: freed}, trash: trash}
}

func unreadable(c Candidate, err error) Candidate {
	k := relabel(c, ClassUnreadable, ReasonUnreadable, err.Error())
	k.Err = err
	return k
}

func relabel(c Candidate, class Class, reason Reason, detail string) Candidate {
	c.Class, c.Reason, c.Detail = class, reason, detail
	return c
}

// errLeftInPlace stops a commit whose rootfs-work, removed in place, is
// not all gone; what stays is reported on its own.
var errLeftInPlace = errors.New("rootfs-work partly removed in place; the rest is left for the next run")

// commit moves d's rootfs-work into the trash (or removes it in place),
// then go-microvm's files, the state file last. It returns the bytes freed
// and the trash entry rootfs-work became ("" if none).
func (c *collector) commit(d *os.File, path string) (int64, string, error) {
	freed, trash, err := c.moveRootfsWork(d, path)
	if err != nil {
		return freed, trash, err
	}
	names, err := ownedFiles(d)
	if err != nil {
		return freed, trash, fmt.Errorf("list data directory: %w", err)
	}
	for _, name := range names {
		var st unix.Stat_t
		err := sysat.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return freed, trash, &fs.PathError{Op: "lstat", Path: filepath.Join(path, name), Err: err}
		}
		// Anything but a regular file under the name is not go-microvm's.
		if !sysat.IsRegular(&st) {
			continue
		}
		if err := sysat.Unlinkat(int(d.Fd()), name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			if name == state.FileName {
				return freed, trash, &fs.PathError{Op: "unlink", Path: filepath.Join(path, name), Err: err}
			}
			c.addErr("unlink", filepath.Join(path, name), err)
			continue
		}
		freed += freedBy(&st)
	}
	return freed, trash, nil
}

// moveRootfsWork renames d/rootfs-work into the trash, or else removes it in
// place, returning errLeftInPlace when some of it stays.
func (c *collector) moveRootfsWork(d *os.File, path string) (int64, string, error) {
	wpath := filepath.Join(path, rootfsWorkName)
	var st unix.Stat_t
	if err := sysat.Fstatat(int(d.Fd()), rootfsWorkName, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		return 0, "", nil
	}
	// A rename to another parent rewrites its "..": it must be writable.
	if w, err := openDirAt(d, rootfsWorkName, wpath); err == nil {
		_, werr := makeWritable(w, w.Name())
		_ = w.Close()
		if werr != nil {
			return 0, "", werr
		}
	}
	// Into the trash goes only a tree holding no live VM's data directory,
	// no mount point and nothing unreadable.
	if t := c.trash; t != nil {
		res, err := treeOptions(c.ob, c.o.policy()).InUseAt(c.budget, d, rootfsWorkName, wpath)
		if err == nil && len(res.InUse) == 0 && len(res.Mounts) == 0 && len(res.Errors) == 0 {
			name := fmt.Sprintf("%d-%d-%d", time.Now().UnixNano(), os.Getpid(), trashSeq.Add(1))
			if err = sysat.Renameat(int(d.Fd()), rootfsWorkName, int(t.Fd()), name); err == nil {
				return 0, name, nil
			}
			// Another filesystem (EXDEV), say; or rootfs-work went meanwhile.
			c.o.logger.Debug("gc: removing in place", "path", wpath, "error", err)
		}
	}
	freed, gone := c.removeTree(d, rootfsWorkName, wpath, path)
	if !gone {
		return freed, "", errLeftInPlace
	}
	return freed, "", nil
}
