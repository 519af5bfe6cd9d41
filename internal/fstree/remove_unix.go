// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// RemoveAt removes the entry name of the open directory parent, and
// everything below it when it is a directory, with the default Options.
// See Options.RemoveAt.
func RemoveAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	return Options{}.RemoveAt(ctx, parent, name, displayPath)
}

// SizeAt measures the entry name of the open directory parent like
// RemoveAt would free it, without changing anything, with the default
// Options. See Options.SizeAt.
func SizeAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	return Options{}.SizeAt(ctx, parent, name, displayPath)
}

// RemoveAll removes path and everything below it like RemoveAt, with the
// default Options. The directory containing path is opened by name, so a
// symlink among path's ancestors is followed; nothing at or below path's
// last element is. A path that does not exist is not an error.
func RemoveAll(ctx context.Context, path string) (Result, error) {
	dir, name := filepath.Split(filepath.Clean(path))
	if path == "" || name == "." || name == ".." || name == "/" || name == "" {
		return Result{}, &os.PathError{Op: "remove", Path: path, Err: unix.EINVAL}
	}
	if dir == "" {
		dir = "."
	}
	parent, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("remove %s: %w", path, err)
	}
	defer parent.Close()
	return RemoveAt(ctx, parent, name, path)
}

// RemoveAt removes the entry name of the open directory parent, and
// everything below it when it is a directory. name must be a single path
// component. displayPath names the entry in errors and Result.Mounts.
//
// A symlink is unlinked, never followed. A directory on another filesystem
// or mount than the top entry is not entered: it is listed in
// Result.Mounts and left with its ancestors; if the top entry itself is on
// another mount than parent, nothing is removed. Directories of the tree
// that forbid listing or removing their entries get owner rwx permission
// first; parent is never changed, so it must allow removing name.
//
// The error is nil when the entry is gone, or did not exist. Otherwise it
// wraps ErrBudget when ctx ended first (the rest is intact and can be
// removed later), ErrMountPoint when mount points were left, and the
// failures listed in Result.Errors; the Result always accounts for what
// was removed.
func (o Options) RemoveAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	return o.run(ctx, parent, name, displayPath, true)
}

// SizeAt measures the entry name of the open directory parent like
// RemoveAt would free it, without changing anything: mount points and the
// directories holding them are not counted, and directories that RemoveAt
// would have to make accessible are reported in Result.Errors instead.
// The error is nil when everything was measured or the entry does not
// exist; otherwise it wraps ErrBudget when ctx ended first, and the
// failures listed in Result.Errors.
func (o Options) SizeAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	return o.run(ctx, parent, name, displayPath, false)
}

// InUseAt looks through the entry name of parent, like SizeAt but
// reading only directories, for what RemoveAt would leave in place there
// today: the directories Options.InUse calls in use (Result.InUse) and
// the mount points (Result.Mounts). It changes nothing. Result.Errors
// lists the directories it could not look into; the counts and Bytes
// mean nothing. The error is as SizeAt's.
func (o Options) InUseAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	o.dirsOnly = true
	return o.run(ctx, parent, name, displayPath, false)
}

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, '/')
}

func (o Options) run(ctx context.Context, parent *os.File, name, display string, remove bool) (Result, error) {
	op := "size"
	if remove {
		op = "remove"
	}
	if !validName(name) {
		return Result{}, &os.PathError{Op: op, Path: display, Err: unix.EINVAL}
	}
	if ctx.Err() != nil {
		return Result{}, fmt.Errorf("%s %s: %w: %w", op, display, ErrBudget, context.Cause(ctx))
	}
	rc, err := parent.SyscallConn()
	if err != nil {
		return Result{}, fmt.Errorf("%s %s: %w", op, display, err)
	}
	w := &walker{ctx: ctx, done: ctx.Done(), remove: remove, op: op, display: display, o: o}
	w.cond.L = &w.mu
	w.fds.limit = cachedDirs
	if o.noCache {
		w.fds.limit = 0
	}
	// Control keeps parent's descriptor from being closed during the walk.
	cerr := rc.Control(func(pfd uintptr) { w.walk(int(pfd), name, o.workers()) })
	if cerr != nil {
		return Result{}, fmt.Errorf("%s %s: %w", op, display, cerr)
	}
	return w.res, w.err()
}

// walker is the state of one RemoveAt or SizeAt call.
type walker struct {
	o       Options
	ctx     context.Context
	done    <-chan struct{}
	remove  bool
	op      string
	display string
	top     *node
	fds     fdCache
	// topFinished is set once the top is removed, measured, or given up.
	topFinished atomic.Bool

	mu     sync.Mutex // guards stack and active
	cond   sync.Cond
	stack  []*node // directories to list, last in first out
	active int     // directories being processed

	resMu sync.Mutex // guards res
	res   Result

	linkMu sync.Mutex
	links  map[fileID]links // non-directories with links not all met yet
	nlinks atomic.Int64     // len(links), read without linkMu
}

// worker is one goroutine's share of a walk: it keeps its own counters so
// that the hot path touches no shared cache line.
type worker struct {
	w                  *walker
	bytes, files, dirs int64
	// buf receives getdents batches; names holds the listing of the
	// directory being processed, each name NUL-terminated.
	buf, names []byte
}

// maxKeptNames bounds the listing buffer a worker keeps for the next
// directory once a huge one is done.
const maxKeptNames = 1 << 20

func (w *walker) cancelled() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// topFailed reports whether err, from op on the top entry, ends the walk:
// ENOENT means the entry is gone already, so there is nothing left to do,
// and anything else is a failure, recorded.
func (w *walker) topFailed(k *worker, op string, err error) bool {
	switch err {
	case nil:
		return false
	case unix.ENOENT:
		w.topFinished.Store(true)
	default:
		k.fail(op, w.display, err)
	}
	return true
}

func (w *walker) walk(pfd int, name string, workers int) {
	k := &worker{w: w}
	defer k.merge()
	w.fds.m.method = w.o.mounts.resolve(pfd)
	st, err := w.fds.m.lstatAt(pfd, name)
	if w.topFailed(k, "lstat", err) {
		return
	}
	if !st.isDir() {
		if w.remove && w.topFailed(k, "unlinkat", sysat.Unlinkat(pfd, name, 0)) {
			return
		}
		k.countFile(&st)
		w.topFinished.Store(true)
		return
	}
	pst, err := w.fds.m.fstatFD(pfd)
	if err != nil {
		k.fail("fstat", filepath.Dir(w.display), err)
		return
	}
	// The top is judged by st_dev where the method cannot tell: callers
	// hand over an entry they renamed into place, and a rename cannot
	// move a mount point. Below it, a directory the method cannot judge
	// is left as a possible mount.
	if same, _ := w.fds.m.same(pst.id, st.id); !same {
		w.addMount(w.display)
		return
	}
	if w.fds.m.method == mountInfo {
		w.fds.m.devOnce = devMountedOnce(st.id.dev)
	}

	root := &node{fd: pfd, refs: 1, st: pst}
	w.top = &node{parent: root, name: name, st: st, display: w.display, fd: -1}
	w.top.pending.Store(1)
	w.stack = append(w.stack, w.top)
	defer w.fds.closeAll()
	stop := context.AfterFunc(w.ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stop()

	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(func() {
			k := &worker{w: w}
			k.run()
			k.merge()
		})
	}
	k.run()
	wg.Wait()
	if w.o.peakFDs != nil {
		w.o.peakFDs(w.fds.peak)
	}
}

func (w *walker) err() error {
	var errs []error
	if !w.topFinished.Load() && w.cancelled() {
		errs = append(errs, fmt.Errorf("%s %s: %w: %w", w.op, w.display, ErrBudget, context.Cause(w.ctx)))
	}
	slices.Sort(w.res.Mounts)
	if w.remove && len(w.res.Mounts) > 0 {
		errs = append(errs, fmt.Errorf("remove %s: %w: %q", w.display, ErrMountPoint, w.res.Mounts))
	}
	slices.SortFunc(w.res.InUse, func(a, b InUse) int { return strings.Compare(a.Path, b.Path) })
	if w.remove && len(w.res.InUse) > 0 {
		errs = append(errs, fmt.Errorf("remove %s: %w: %q (%s)", w.display, ErrInUse, w.res.InUse[0].Path, w.res.InUse[0].Reason))
	}
	switch n := len(w.res.Errors); {
	case n == 1:
		errs = append(errs, w.res.Errors[0])
	case n > 1:
		errs = append(errs, fmt.Errorf("%s %s: %d errors, the first: %w", w.op, w.display, n, w.res.Errors[0]))
	}
	return errors.Join(errs...)
}

func (w *walker) push(n *node) {
	w.mu.Lock()
	w.stack = append(w.stack, n)
	w.mu.Unlock()
	w.cond.Signal()
}

// pop returns the next directory to process, or nil when the walk is over
// or the budget is spent.
func (w *walker) pop() *node {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if w.cancelled() {
			return nil
		}
		if n := len(w.stack); n > 0 {
			d := w.stack[n-1]
			w.stack[n-1] = nil
			w.stack = w.stack[:n-1]
			w.active++
			return d
		}
		if w.active == 0 {
			return nil
		}
		w.cond.Wait()
	}
}

func (w *walker) processed() {
	w.mu.Lock()
	w.active--
	if w.active == 0 {
		w.cond.Broadcast()
	}
	w.mu.Unlock()
}

func (w *walker) addInUse(path, why string) {
	w.resMu.Lock()
	w.res.InUse = append(w.res.InUse, InUse{Path: path, Reason: why})
	w.resMu.Unlock()
}

func (w *walker) addMount(path string) {
	w.resMu.Lock()
	w.res.Mounts = append(w.res.Mounts, path)
	w.resMu.Unlock()
}

func (k *worker) fail(op, path string, err error) {
	k.w.resMu.Lock()
	k.w.res.Errors = append(k.w.res.Errors, &os.PathError{Op: op, Path: path, Err: err})
	k.w.resMu.Unlock()
}

func (k *worker) merge() {
	k.w.resMu.Lock()
	k.w.res.Bytes += k.bytes
	k.w.res.Files += k.files
	k.w.res.Dirs += k.dirs
	k.w.resMu.Unlock()
}

func (k *worker) run() {
	for {
		n := k.w.pop()
		if n == nil {
			return
		}
		k.process(n)
		k.w.processed()
	}
}

// countFile accounts for a removed (or measured) non-directory, after its
// unlink. Its blocks are freed only with its last link, so a file with
// several links counts when the links this walk has met reach the st_nlink
// seen the first time it met the inode: a file also linked from outside
// the tree frees nothing and counts nothing, and two links inside the tree
// count once. A link met again after an earlier unlink shows a smaller
// st_nlink, so only the first sight's count is trusted.
func (k *worker) countFile(st *stat) {
	k.files++
	w := k.w
	if st.nlink > 1 || w.nlinks.Load() > 0 {
		w.linkMu.Lock()
		l, seen := w.links[st.id]
		switch {
		case seen:
			l.met++
			if l.met >= l.nlink {
				delete(w.links, st.id)
				w.nlinks.Add(-1)
			} else {
				w.links[st.id] = l
			}
		case st.nlink > 1:
			if w.links == nil {
				w.links = make(map[fileID]links)
			}
			w.links[st.id] = links{nlink: st.nlink, met: 1}
			w.nlinks.Add(1)
		}
		w.linkMu.Unlock()
		if seen && l.met < l.nlink || !seen && st.nlink > 1 {
			return
		}
	}
	k.bytes += st.blocks * 512
}

// links tracks an inode with several links: how many it had when first
// met, and how many of them the walk has met.
type links struct {
	nlink, met uint64
}

// process lists the directory n, removes (or measures) its
// non-directories and queues its subdirectories. It stops between two
// entries when the budget is spent, leaving n unfinished.
func (k *worker) process(n *node) {
	w := k.w
	if n != w.top && w.o.beforeOpen != nil {
		w.o.beforeOpen(n.path())
	}
	fd, ok := k.open(n)
	if !ok {
		return
	}
	if k.buf == nil {
		k.buf = make([]byte, 32<<10)
	}
	names, err := listNames(fd, k.buf, k.names, w.o.dirsOnly, w.o.InUseMarker)
	if cap(names) <= maxKeptNames {
		k.names = names
	} else {
		k.names = nil
	}
	// ENOENT: the directory was removed under us, and lists as empty.
	if err != nil && err != unix.ENOENT {
		k.fail("getdents", n.path(), err)
		n.keep.Store(true)
	}
	if w.o.InUse != nil && hasName(names, w.o.InUseMarker) {
		if why := w.o.InUse(fd, n.path()); why != "" {
			w.addInUse(n.path(), why)
			n.keep.Store(true)
			w.fds.release(n)
			k.finish(n)
			return
		}
	}
	for len(names) > 0 {
		if w.cancelled() {
			w.fds.release(n)
			return
		}
		i := bytes.IndexByte(names, 0)
		k.entry(n, fd, names[:i+1], false)
		names = names[i+1:]
	}
	w.fds.release(n)
	k.finish(n)
}

// open returns a descriptor of n, the directory its parent listed. When
// the name now holds something else it deals with that instead and
// returns false: a vanished entry is done, a non-directory (such as a
// symlink swapped in) is unlinked, a mount is reported.
func (k *worker) open(n *node) (int, bool) {
	w := k.w
	var err error
	chmodded := false
	for attempt := 0; attempt < 4; attempt++ {
		var fd int
		var at *node
		fd, at, err = w.fds.acquire(n)
		if err == nil {
			return fd, true
		}
		if at != n {
			if err == unix.ENOENT {
				// An ancestor went, and n with it: removed by someone
				// else, which is what this walk was for.
				k.ended(n)
				return -1, false
			}
			k.fail("openat", at.path(), err)
			k.giveUp(n)
			return -1, false
		}
		switch {
		case err == unix.ENOENT:
			k.ended(n)
			return -1, false
		case isPermission(err) && w.remove && !chmodded:
			k.makeOpenable(n)
			chmodded = true
		case err == unix.ELOOP || err == unix.ENOTDIR || err == errChanged:
			if !k.restat(n) {
				return -1, false
			}
		default:
			attempt = 4
		}
	}
	k.fail("openat", n.path(), err)
	k.giveUp(n)
	return -1, false
}

// makeOpenable grants the owner access to n and to its parent (unless the
// parent is the caller's directory, which is not part of the tree).
func (k *worker) makeOpenable(n *node) {
	pfd, err := k.w.fds.acquireParent(n)
	if err != nil {
		return
	}
	if n.parent.parent != nil {
		makeAccessible(pfd)
	}
	makeEntryAccessible(pfd, n.name, n.st.mode)
	k.w.fds.release(n.parent)
}

// restat looks again at the name of n after it could not be opened as the
// directory seen before. It returns true when the name is a directory of
// the tree again, to be opened; otherwise it has dealt with the entry.
func (k *worker) restat(n *node) bool {
	w := k.w
	pfd, err := w.fds.acquireParent(n)
	if err == unix.ENOENT {
		k.ended(n)
		return false
	}
	if err != nil {
		k.fail("openat", n.parent.path(), err)
		k.giveUp(n)
		return false
	}
	defer w.fds.release(n.parent)
	st, err := w.fds.m.lstatAt(pfd, n.name)
	switch {
	case err == unix.ENOENT:
		k.ended(n)
		return false
	case err != nil:
		k.fail("lstat", n.path(), err)
		k.giveUp(n)
		return false
	case st.isDir() && !w.fds.m.onMount(w.top.st.id, st.id):
		w.addMount(n.path())
		k.giveUp(n)
		return false
	case st.isDir():
		n.st = st
		return true
	}
	if w.remove {
		err := sysat.Unlinkat(pfd, n.name, 0)
		if err != nil && err != unix.ENOENT {
			k.fail("unlinkat", n.path(), err)
			k.giveUp(n)
			return false
		}
	}
	k.countFile(&st)
	k.ended(n)
	return false
}

// hasName reports whether the listing names (NUL-terminated names) holds
// name.
func hasName(names []byte, name string) bool {
	for len(names) > 0 {
		i := bytes.IndexByte(names, 0)
		if string(names[:i]) == name {
			return true
		}
		names = names[i+1:]
	}
	return false
}

// entry removes (or measures) the entry cname (NUL-terminated, from
// listNames) of the directory n, open as fd, or queues it when it is a
// directory of the tree. A plain file costs one stat and one unlink and
// allocates nothing: the stat is what the exact accounting of Result.Bytes
// needs (st_blocks, and st_nlink for hard links), which getdents does not
// give.
func (k *worker) entry(n *node, fd int, cname []byte, again bool) {
	w := k.w
	name := cname[:len(cname)-1]
	lstat := func() (stat, error) {
		if w.o.copyNames {
			return w.fds.m.lstatAt(fd, string(name))
		}
		return w.fds.m.lstatAtName(fd, cname)
	}
	unlink := func() error {
		if w.o.copyNames {
			return sysat.Unlinkat(fd, string(name), 0)
		}
		return unlinkAtName(fd, cname, 0)
	}
	st, err := lstat()
	if isPermission(err) && w.remove {
		makeAccessible(fd)
		st, err = lstat()
	}
	switch {
	case err == unix.ENOENT:
		return
	case err != nil:
		k.fail("lstat", n.path()+"/"+string(name), err)
		n.keep.Store(true)
		return
	case st.isDir():
		if !w.fds.m.onMount(w.top.st.id, st.id) {
			w.addMount(n.path() + "/" + string(name))
			n.keep.Store(true)
			return
		}
		c := &node{parent: n, name: string(name), st: st, fd: -1}
		c.pending.Store(1)
		n.pending.Add(1)
		w.push(c)
		return
	}
	if w.remove {
		err := unlink()
		if isPermission(err) {
			makeAccessible(fd)
			err = unlink()
		}
		if err == unix.ENOENT {
			return
		}
		if err != nil {
			// The entry may have become a directory since the lstat
			// (unlink says EISDIR on Linux, EPERM on darwin).
			if st2, serr := plainStatAt(fd, string(name), 0); !again && serr == nil && st2.isDir() {
				k.entry(n, fd, cname, true)
				return
			}
			k.fail("unlinkat", n.path()+"/"+string(name), err)
			n.keep.Store(true)
			return
		}
	}
	k.countFile(&st)
}

// ended finishes n, whose name no longer holds a directory to walk.
func (k *worker) ended(n *node) {
	if n == k.w.top {
		k.w.topFinished.Store(true)
		return
	}
	k.finish(n.parent)
}

// giveUp finishes n, which stays, with its ancestors.
func (k *worker) giveUp(n *node) {
	if n == k.w.top {
		k.w.topFinished.Store(true)
		return
	}
	n.parent.keep.Store(true)
	k.finish(n.parent)
}

// finish ends one pending piece of n (its listing pass or a child). The
// last one removes (or counts) n and goes on with n's parent, iteratively,
// so a 10,000-level chain needs no deep recursion.
func (k *worker) finish(n *node) {
	w := k.w
	for n.pending.Add(-1) == 0 {
		kept, requeued := k.closeDir(n)
		if requeued {
			return
		}
		if n == w.top {
			w.topFinished.Store(true)
			return
		}
		if kept {
			n.parent.keep.Store(true)
		}
		n = n.parent
	}
}

// closeDir removes (or counts) the directory n, whose entries are all
// done. It reports whether n stays, or was queued to be listed again
// because new entries appeared.
func (k *worker) closeDir(n *node) (kept, requeued bool) {
	w := k.w
	if n.keep.Load() {
		return true, false
	}
	if !w.remove {
		k.dirs++
		k.bytes += n.st.blocks * 512
		return false, false
	}
	pfd, err := w.fds.acquireParent(n)
	if err == unix.ENOENT {
		// The parent went, and n with it.
		w.fds.forget(n)
		return false, false
	}
	if err != nil {
		k.fail("openat", n.parent.path(), err)
		return true, false
	}
	w.fds.forget(n)
	err = sysat.Unlinkat(pfd, n.name, unix.AT_REMOVEDIR)
	if isPermission(err) && n.parent.parent != nil {
		makeAccessible(pfd)
		err = sysat.Unlinkat(pfd, n.name, unix.AT_REMOVEDIR)
	}
	w.fds.release(n.parent)
	switch {
	case err == nil:
		k.dirs++
		k.bytes += n.st.blocks * 512
		return false, false
	case err == unix.ENOENT:
		return false, false
	case (err == unix.ENOTEMPTY || err == unix.EEXIST) && n.requeues < 3:
		// Entries were created after the listing: list again.
		n.requeues++
		n.pending.Store(1)
		w.push(n)
		return false, true
	}
	if n.st.id.dev != n.parent.st.id.dev {
		// A btrfs subvolume (its own st_dev on the walk's mount): the
		// kernel removes only an empty one, and only where rmdir of a
		// subvolume is allowed (Linux 4.18, or user_subvol_rm_allowed).
		k.fail("rmdir subvolume", n.path(), err)
		return true, false
	}
	k.fail("unlinkat", n.path(), err)
	return true, false
}
