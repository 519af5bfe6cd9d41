// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

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

// RemoveAt removes the entry name (one path component) of the open
// directory parent and everything below it; displayPath names it in
// errors. Mounts stay with their ancestors (a top entry on another mount
// than parent stays whole). Directories that forbid removing their entries
// get owner rwx first; parent is never changed. The error is nil when the
// entry is gone or was missing; else it wraps ErrBudget (ctx ended; the
// rest is intact), ErrMountPoint, and Result.Errors. Result accounts for
// what was removed.
func (o Options) RemoveAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	return o.run(ctx, parent, name, displayPath, true)
}

// SizeAt measures what RemoveAt would free, changing nothing; directories
// RemoveAt would have to make accessible are in Result.Errors instead. Its
// error is as RemoveAt's, without ErrMountPoint.
func (o Options) SizeAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	return o.run(ctx, parent, name, displayPath, false)
}

// InUseAt finds, reading only directories, what RemoveAt would leave in
// place today (Result.InUse, Result.Mounts) and what it cannot look into
// (Result.Errors); counts and Bytes mean nothing. Its error is SizeAt's.
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
	w := &walker{o: o, ctx: ctx, done: ctx.Done(), remove: remove, op: op, display: display, maxOpen: maxOpenDirs}
	// Control keeps parent's descriptor from being closed during the walk.
	cerr := rc.Control(func(pfd uintptr) { w.walk(int(pfd), name) })
	if cerr != nil {
		return Result{}, fmt.Errorf("%s %s: %w", op, display, cerr)
	}
	if o.peakFDs != nil {
		o.peakFDs(w.peak)
	}
	return w.res, w.err()
}

// errChanged reports that a name no longer refers to the directory seen
// when its parent was listed.
var errChanged = errors.New("directory replaced during the walk")

// maxOpenDirs bounds the directory descriptors a walk holds.
const maxOpenDirs = 16

// walker is the state of one RemoveAt or SizeAt call: one goroutine
// walks the tree depth first.
type walker struct {
	o       Options
	ctx     context.Context
	done    <-chan struct{}
	remove  bool
	op      string
	display string
	m       mounter
	top     *frame
	// stack holds the directories from the top's parent (the caller's,
	// never closed here) down to the one being walked. stack[1:lo] are
	// closed: the open ones are always the deepest.
	stack         []*frame
	lo            int
	open, maxOpen int
	peak          int
	stopped       bool // the context ended the walk
	res           Result
	links         map[fileID]links // files with links not all met yet
	buf           []byte           // getdents scratch
}

// frame is one directory on the walk's path.
type frame struct {
	parent *frame
	name   string
	st     stat
	depth  int // index in walker.stack
	fd     int // -1 while closed
	// lost is why the directory, closed to bound the descriptors, could
	// not be reopened.
	lost error
}

// path is the display path of d, for errors, Mounts and InUse.
func (w *walker) path(d *frame) string {
	var names []string
	for ; d != w.top; d = d.parent {
		names = append(names, d.name)
	}
	p := w.display
	for i := len(names) - 1; i >= 0; i-- {
		p += "/" + names[i]
	}
	return p
}

func (w *walker) cancelled() bool {
	select {
	case <-w.done:
		w.stopped = true
		return true
	default:
		return false
	}
}

func (w *walker) walk(pfd int, name string) {
	w.m.method = w.o.mounts.resolve(pfd)
	st, err := w.m.lstatAt(pfd, name)
	switch {
	case err == unix.ENOENT:
		return
	case err != nil:
		w.fail("lstat", w.display, err)
		return
	case !st.isDir():
		if err := w.file(pfd, name, &st); err != nil {
			w.fail("unlinkat", w.display, err)
		}
		return
	}
	pst, err := w.m.fstatFD(pfd)
	if err != nil {
		w.fail("fstat", filepath.Dir(w.display), err)
		return
	}
	// The top is judged by st_dev where the method cannot tell: callers
	// hand over an entry they renamed into place, and a rename cannot
	// move a mount point. Below it, a directory the method cannot judge
	// is left as a possible mount.
	if same, _ := w.m.same(pst.id, st.id); !same {
		w.addMount(w.display)
		return
	}
	if w.m.method == mountInfo {
		w.m.devOnce = devMountedOnce(st.id.dev)
	}
	root := &frame{fd: pfd, st: pst}
	w.top = &frame{parent: root, name: name, st: st, depth: 1, fd: -1}
	w.stack, w.lo = []*frame{root}, 1
	w.dir(w.top)
}

func (w *walker) err() error {
	var errs []error
	if w.stopped {
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

func (w *walker) fail(op, path string, err error) {
	w.res.Errors = append(w.res.Errors, &os.PathError{Op: op, Path: path, Err: err})
}

func (w *walker) addMount(path string) { w.res.Mounts = append(w.res.Mounts, path) }

// dir removes (or measures) everything below the directory d, a child of
// the directory being walked, and then d itself. It reports whether d
// stays: something below it stays, it failed, or the context ended the
// walk (the rest is then intact).
func (w *walker) dir(d *frame) bool {
	w.stack = append(w.stack, d)
	defer w.leave(d)
	for pass := 0; ; pass++ {
		if ok, kept := w.enter(d); !ok {
			return kept
		}
		if kept, vanished := w.children(d); kept || vanished {
			return kept
		}
		if !w.remove {
			w.countDir(d)
			return false
		}
		// Entries created after the listing fail the rmdir: list again,
		// a few times.
		if kept, again := w.rmdir(d, pass < 3); !again {
			return kept
		}
	}
}

// leave ends the walk of d. The parent's walk goes on: a parent closed to
// bound the descriptors is reopened while d can still reach it through
// "..".
func (w *walker) leave(d *frame) {
	if p := d.parent; p.fd < 0 {
		p.lost = cmp.Or(d.lost, errChanged)
		if d.fd >= 0 {
			p.lost = w.reopen(p, d)
		}
	}
	w.close(d)
	w.stack = w.stack[:len(w.stack)-1]
}

// children removes (or measures) the entries of the open directory d. It
// reports whether d stays (an entry stays, d is in use or could not be
// listed, the context ended the walk, or d was lost), and whether d
// vanished during the walk.
func (w *walker) children(d *frame) (kept, vanished bool) {
	if w.buf == nil {
		w.buf = make([]byte, 32<<10)
	}
	names, err := listNames(d.fd, w.buf, w.o.dirsOnly, w.o.InUseMarker)
	// ENOENT: the directory was removed under us, and lists as empty.
	if err != nil && err != unix.ENOENT {
		w.fail("getdents", w.path(d), err)
		kept = true
	}
	if w.keptInUse(d, names) {
		return true, false
	}
	for _, name := range names {
		if w.cancelled() {
			return true, false
		}
		if w.entry(d, name) {
			kept = true
		}
		// d was closed to bound the descriptors, and a child's walk could
		// not reopen it.
		if d.fd < 0 {
			if d.lost != unix.ENOENT {
				w.fail("openat", w.path(d), d.lost)
				return true, false
			}
			return kept, true
		}
	}
	return kept, false
}

// keptInUse reports whether d, holding names, is in use by Options.InUse,
// and records it in Result.InUse: nothing in it is touched.
func (w *walker) keptInUse(d *frame, names []string) bool {
	if w.o.InUse == nil || !slices.Contains(names, w.o.InUseMarker) {
		return false
	}
	why := w.o.InUse(d.fd, w.path(d))
	if why == "" {
		return false
	}
	w.res.InUse = append(w.res.InUse, InUse{Path: w.path(d), Reason: why})
	return true
}

// rmdir removes the emptied directory d from its parent. It reports
// whether d stays, or, when retry allows it, whether entries created
// after the listing call for another pass.
func (w *walker) rmdir(d *frame, retry bool) (kept, again bool) {
	p := d.parent
	if p.fd < 0 {
		if err := w.reopen(p, d); err != nil {
			if err == unix.ENOENT {
				return false, false
			}
			w.fail("openat", w.path(p), err)
			return true, false
		}
	}
	w.close(d)
	err := sysat.Unlinkat(p.fd, d.name, unix.AT_REMOVEDIR)
	if isPermission(err) && p != w.stack[0] {
		makeAccessible(p.fd)
		err = sysat.Unlinkat(p.fd, d.name, unix.AT_REMOVEDIR)
	}
	switch {
	case err == nil:
		w.countDir(d)
		return false, false
	case err == unix.ENOENT:
		return false, false
	case (err == unix.ENOTEMPTY || err == unix.EEXIST) && retry:
		return false, true
	case d.st.id.dev != p.st.id.dev:
		// A btrfs subvolume (its own st_dev on the walk's mount): the
		// kernel removes only an empty one, and only where rmdir of a
		// subvolume is allowed (Linux 4.18, or user_subvol_rm_allowed).
		w.fail("rmdir subvolume", w.path(d), err)
	default:
		w.fail("unlinkat", w.path(d), err)
	}
	return true, false
}

// countDir accounts for a removed (or measured) directory.
func (w *walker) countDir(d *frame) {
	w.res.Dirs++
	w.res.Bytes += d.st.blocks * 512
}

// enter opens d, whose parent is open. When d's name now holds something
// else it deals with that instead and returns false, with whether the
// entry stays (see replaced).
func (w *walker) enter(d *frame) (ok, kept bool) {
	p := d.parent
	if d != w.top && w.o.beforeOpen != nil {
		w.o.beforeOpen(w.path(d))
	}
	var err error
	chmodded := false
	for range 4 {
		var fd int
		fd, err = w.openDir(p.fd, d.name, d.st.id)
		if err == nil {
			w.adopt(d, fd)
			return true, false
		}
		switch {
		case err == unix.ENOENT:
			return false, false
		case isPermission(err) && w.remove && !chmodded:
			if p != w.stack[0] {
				makeAccessible(p.fd)
			}
			makeEntryAccessible(p.fd, d.name, d.st.mode)
			chmodded = true
			continue
		case err == unix.ELOOP || err == unix.ENOTDIR || err == errChanged:
			if again, kept := w.replaced(d); !again {
				return false, kept
			}
			continue
		}
		break
	}
	w.fail("openat", w.path(d), err)
	return false, true
}

// replaced deals with d's name, which no longer holds the directory
// listed. It reports whether the name holds another directory of the
// tree, to open instead (d.st is then updated); else whether the entry
// stays: a vanished entry is done, a non-directory (such as a symlink
// swapped in) is unlinked, a mount is reported.
func (w *walker) replaced(d *frame) (again, kept bool) {
	p := d.parent
	st, err := w.m.lstatAt(p.fd, d.name)
	switch {
	case err == unix.ENOENT:
		return false, false
	case err != nil:
		w.fail("lstat", w.path(d), err)
		return false, true
	case st.isDir() && !w.m.onMount(w.top.st.id, st.id):
		w.addMount(w.path(d))
		return false, true
	case st.isDir():
		d.st = st
		return true, false
	}
	if err := w.file(p.fd, d.name, &st); err != nil {
		w.fail("unlinkat", w.path(d), err)
		return false, true
	}
	return false, false
}

// entry removes (or measures) the entry name of the directory d, walking
// it when it is a directory of the tree. It reports whether the entry
// stays. A plain file costs one stat and one unlink: the stat is what the
// exact accounting of Result.Bytes needs (st_blocks, and st_nlink for
// hard links).
func (w *walker) entry(d *frame, name string) (kept bool) {
	for again := false; ; again = true {
		st, err := w.m.lstatAt(d.fd, name)
		if isPermission(err) && w.remove {
			makeAccessible(d.fd)
			st, err = w.m.lstatAt(d.fd, name)
		}
		switch {
		case err == unix.ENOENT:
			return false
		case err != nil:
			w.fail("lstat", w.path(d)+"/"+name, err)
			return true
		case st.isDir() && !w.m.onMount(w.top.st.id, st.id):
			w.addMount(w.path(d) + "/" + name)
			return true
		case st.isDir():
			return w.dir(&frame{parent: d, name: name, st: st, depth: d.depth + 1, fd: -1})
		}
		err = w.file(d.fd, name, &st)
		if err == nil {
			return false
		}
		// The entry may have become a directory since the lstat (unlink
		// says EISDIR on Linux, EPERM on darwin): look once more.
		if st, serr := w.m.lstatAt(d.fd, name); again || serr != nil || !st.isDir() {
			w.fail("unlinkat", w.path(d)+"/"+name, err)
			return true
		}
	}
}

// file unlinks (when removing) and counts the non-directory name of the
// open directory fd, seen as st. A name already gone counts nothing; a
// failure is returned, nothing counted.
func (w *walker) file(fd int, name string, st *stat) error {
	if w.remove {
		err := sysat.Unlinkat(fd, name, 0)
		if isPermission(err) {
			makeAccessible(fd)
			err = sysat.Unlinkat(fd, name, 0)
		}
		if err == unix.ENOENT {
			return nil
		}
		if err != nil {
			return err
		}
	}
	w.countFile(st)
	return nil
}

// countFile accounts for a removed (or measured) non-directory. Blocks are
// freed only with the last link, so a multiply linked file counts once the
// links met reach the st_nlink first seen (later sights show fewer): one
// also linked from outside the tree counts nothing.
func (w *walker) countFile(st *stat) {
	w.res.Files++
	if l, seen := w.links[st.id]; seen {
		l.met++
		if l.met < l.nlink {
			w.links[st.id] = l
			return
		}
		delete(w.links, st.id)
	} else if st.nlink > 1 {
		if w.links == nil {
			w.links = make(map[fileID]links)
		}
		w.links[st.id] = links{nlink: st.nlink, met: 1}
		return
	}
	w.res.Bytes += st.blocks * 512
}

// links tracks an inode with several links: how many it had when first
// met, and how many of them the walk has met.
type links struct {
	nlink, met uint64
}

// openDir opens the directory name below fd and checks that it is want
// (device, inode, mount). Out of descriptors, it closes those the walk can
// spare and retries, waiting a little: slower beats failing, since what it
// left would meet the same limit next time.
func (w *walker) openDir(fd int, name string, want fileID) (int, error) {
	w.shed()
	for attempt := 0; ; attempt++ {
		nfd, err := sysat.OpenatNow(fd, name, sysat.DirFlags, 0)
		if err == unix.EMFILE || err == unix.ENFILE {
			w.maxOpen = 2
			w.shed()
		}
		if sysat.WaitForFiles(err, attempt) {
			continue
		}
		if err != nil {
			return -1, err
		}
		st, err := w.m.fstatFD(nfd)
		if err == nil && !sameDir(want, st.id) {
			err = errChanged
		}
		if err != nil {
			closeFD(nfd)
			return -1, err
		}
		return nfd, nil
	}
}

// reopen opens p again, closed to bound the descriptors, through ".." of
// its open child d.
func (w *walker) reopen(p, d *frame) error {
	fd, err := w.openDir(d.fd, "..", p.st.id)
	if err != nil {
		return err
	}
	w.adopt(p, fd)
	return nil
}

func (w *walker) adopt(d *frame, fd int) {
	d.fd = fd
	w.open++
	w.peak = max(w.peak, w.open)
	w.lo = min(w.lo, d.depth)
}

// shed closes the directories nearest the top while the walk holds
// maxOpen or more, never the deepest two (the one being walked and its
// parent).
func (w *walker) shed() {
	for ; w.open >= w.maxOpen && w.lo < len(w.stack)-2; w.lo++ {
		w.close(w.stack[w.lo])
	}
}

func (w *walker) close(d *frame) {
	if d.fd >= 0 && d != w.stack[0] {
		closeFD(d.fd)
		d.fd = -1
		w.open--
	}
}
