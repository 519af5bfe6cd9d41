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

// RemoveAt removes the entry name (one path component) of the open
// directory parent and everything below it; displayPath names it in
// errors. A top entry on another mount than parent stays whole.
// Directories that forbid removing their entries get owner rwx first;
// parent is never changed. The error is nil when the entry is gone or was
// missing; else it wraps ErrBudget, ErrMountPoint, ErrInUse and
// Result.Errors.
func (o Options) RemoveAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	return o.run(ctx, parent, name, displayPath, true)
}

// SizeAt measures what RemoveAt would free, changing nothing; directories
// RemoveAt would make accessible are in Result.Errors instead. Its error
// is RemoveAt's without ErrMountPoint and ErrInUse.
func (o Options) SizeAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	return o.run(ctx, parent, name, displayPath, false)
}

// InUseAt reads only directories to find what RemoveAt would leave in
// place (Result.InUse, Result.Mounts) and what it cannot look into
// (Result.Errors); counts and Bytes mean nothing. Its error is SizeAt's.
func (o Options) InUseAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	o.dirsOnly = true
	return o.run(ctx, parent, name, displayPath, false)
}

func (o Options) run(ctx context.Context, parent *os.File, name, display string, remove bool) (Result, error) {
	op := "size"
	if remove {
		op = "remove"
	}
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return Result{}, &os.PathError{Op: op, Path: display, Err: unix.EINVAL}
	}
	if ctx.Err() != nil {
		return Result{}, fmt.Errorf("%s %s: %w: %w", op, display, ErrBudget, context.Cause(ctx))
	}
	rc, err := parent.SyscallConn()
	if err != nil {
		return Result{}, fmt.Errorf("%s %s: %w", op, display, err)
	}
	w := &walker{o: o, ctx: ctx, remove: remove, op: op, display: display,
		maxOpen: maxOpenDirs, links: map[fileID]uint64{}, buf: make([]byte, 32<<10)}
	// Control keeps parent's descriptor from being closed during the walk.
	if err := rc.Control(func(pfd uintptr) { w.walk(int(pfd), name) }); err != nil {
		return Result{}, fmt.Errorf("%s %s: %w", op, display, err)
	}
	if o.peakFDs != nil {
		o.peakFDs(w.peak)
	}
	return w.res, w.err()
}

// errChanged: a name no longer holds the directory its parent listed.
var errChanged = errors.New("directory replaced during the walk")

const maxOpenDirs = 16

// walker is one walk, depth first.
type walker struct {
	o       Options
	ctx     context.Context
	remove  bool
	op      string
	display string
	m       mountMethod
	top     *frame
	// stack runs from the top's parent (the caller's, never closed here)
	// to the directory being walked; only stack[lo:] may be open.
	stack         []*frame
	lo            int
	open, maxOpen int
	peak          int
	stopped       bool // the context ended the walk
	res           Result
	links         map[fileID]uint64 // hard-linked files: links not met yet
	buf           []byte            // getdents scratch
}

type frame struct {
	name  string
	st    stat
	depth int   // index in walker.stack
	fd    int   // -1 while closed
	lost  error // why it could not be reopened
}

// path is the display path of d, which is on the stack.
func (w *walker) path(d *frame) string {
	p := w.display
	for _, f := range w.stack[2 : d.depth+1] {
		p += "/" + f.name
	}
	return p
}

func (w *walker) walk(pfd int, name string) {
	w.m = w.o.mounts.resolve(pfd)
	pst, err := w.m.statAt(pfd, "")
	if err != nil {
		w.fail("fstat", filepath.Dir(w.display), err)
		return
	}
	root := &frame{fd: pfd, st: pst}
	w.stack, w.lo = []*frame{root}, 1
	for range maxLooks {
		st, err := w.m.statAt(pfd, name)
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
		// The top is judged by st_dev where the method cannot tell:
		// callers hand over an entry they renamed into place, and a
		// rename cannot move a mount point. One swapped in is not.
		if same, known := w.m.same(pst.id, st.id); !same || !known && w.top != nil {
			w.res.Mounts = append(w.res.Mounts, w.display)
			return
		}
		w.m = w.m.settle(st.id.dev)
		w.top = &frame{name: name, st: st, depth: 1, fd: -1}
		if _, replaced := w.dir(w.top); !replaced {
			return
		}
	}
	w.fail("openat", w.display, errChanged)
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

// dir removes (or measures) the directory d and everything below it. It
// reports whether d stays, or whether d's name no longer holds it: the
// caller looks again.
func (w *walker) dir(d *frame) (kept, replaced bool) {
	w.stack = append(w.stack, d)
	defer w.leave(d)
	for pass := 0; ; pass++ {
		switch err := w.enter(d); {
		case err == unix.ENOENT:
			return false, false
		case err == unix.ELOOP || err == unix.ENOTDIR || err == errChanged:
			return false, true
		case err != nil:
			w.fail("openat", w.path(d), err)
			return true, false
		}
		if kept, vanished := w.children(d); kept || vanished {
			return kept, false
		}
		if !w.remove {
			w.res.Dirs++
			w.res.Bytes += d.st.blocks * 512
			return false, false
		}
		// Entries created after the listing fail the rmdir: list again.
		if kept, again := w.rmdir(d, pass < 3); !again {
			return kept, false
		}
	}
}

// leave ends the walk of d, reopening its parent through d's ".." if it
// was closed to bound the descriptors.
func (w *walker) leave(d *frame) {
	if p := w.stack[d.depth-1]; p.fd < 0 {
		p.lost = cmp.Or(d.lost, errChanged)
		if d.fd >= 0 {
			p.lost = w.openFrame(p, d.fd, "..")
		}
	}
	w.close(d)
	w.stack = w.stack[:len(w.stack)-1]
}

// children removes (or measures) the entries of the open directory d. It
// reports whether d stays, and whether it vanished meanwhile.
func (w *walker) children(d *frame) (kept, vanished bool) {
	names, err := listNames(d.fd, w.buf, w.o.dirsOnly, w.o.InUseMarker)
	// ENOENT: removed under us, so empty.
	if err != nil && err != unix.ENOENT {
		w.fail("getdents", w.path(d), err)
		kept = true
	}
	if w.o.InUse != nil && slices.Contains(names, w.o.InUseMarker) {
		if why := w.o.InUse(d.fd, w.path(d)); why != "" {
			w.res.InUse = append(w.res.InUse, InUse{Path: w.path(d), Reason: why})
			return true, false
		}
	}
	for _, name := range names {
		if w.ctx.Err() != nil {
			w.stopped = true
			return true, false
		}
		if w.entry(d, name) {
			kept = true
		}
		if d.fd < 0 { // closed, and a child could not reopen it
			if d.lost != unix.ENOENT {
				w.fail("openat", w.path(d), d.lost)
				return true, false
			}
			return kept, true
		}
	}
	return kept, false
}

// rmdir removes the emptied d. It reports whether d stays, or, when retry
// allows, whether entries created meanwhile call for another pass.
func (w *walker) rmdir(d *frame, retry bool) (kept, again bool) {
	p := w.stack[d.depth-1]
	if p.fd < 0 {
		if err := w.openFrame(p, d.fd, ".."); err != nil {
			if err == unix.ENOENT {
				return false, false
			}
			w.fail("openat", w.path(p), err)
			return true, false
		}
	}
	w.close(d)
	err := sysat.Unlinkat(p.fd, d.name, unix.AT_REMOVEDIR)
	if isPermission(err) {
		w.loosen(p.fd)
		err = sysat.Unlinkat(p.fd, d.name, unix.AT_REMOVEDIR)
	}
	switch {
	case err == nil:
		w.res.Dirs++
		w.res.Bytes += d.st.blocks * 512
		return false, false
	case err == unix.ENOENT:
		return false, false
	case (err == unix.ENOTEMPTY || err == unix.EEXIST) && retry:
		return false, true
	case d.st.id.dev != p.st.id.dev:
		// A btrfs subvolume: removable only empty, and only where the
		// kernel allows (Linux 4.18, or user_subvol_rm_allowed).
		w.fail("rmdir subvolume", w.path(d), err)
	default:
		w.fail("unlinkat", w.path(d), err)
	}
	return true, false
}

// enter opens d, whose parent is open.
func (w *walker) enter(d *frame) error {
	p := w.stack[d.depth-1]
	err := w.openFrame(d, p.fd, d.name)
	if isPermission(err) && w.remove {
		w.loosen(p.fd)
		// Fails where the system cannot chmod without following (Linux
		// before 6.6): then the open's error is reported.
		_ = sysat.Fchmodat(p.fd, d.name, d.st.mode&0o7777|0o700, unix.AT_SYMLINK_NOFOLLOW)
		err = w.openFrame(d, p.fd, d.name)
	}
	return err
}

// maxLooks bounds how often a walk looks at a name whose entry keeps
// changing under it.
const maxLooks = 4

// entry removes (or measures) the entry name of d, walking it when it is a
// directory of the tree. It reports whether the entry stays.
func (w *walker) entry(d *frame, name string) (kept bool) {
	for look := range maxLooks {
		st, err := w.m.statAt(d.fd, name)
		if isPermission(err) && w.remove {
			w.loosen(d.fd)
			st, err = w.m.statAt(d.fd, name)
		}
		switch {
		case err == unix.ENOENT:
			return false
		case err != nil:
			w.fail("lstat", w.path(d)+"/"+name, err)
			return true
		case st.isDir() && !w.m.onMount(w.top.st.id, st.id):
			w.res.Mounts = append(w.res.Mounts, w.path(d)+"/"+name)
			return true
		case st.isDir():
			if look == 0 && w.o.beforeOpen != nil {
				w.o.beforeOpen(w.path(d) + "/" + name)
			}
			if kept, replaced := w.dir(&frame{name: name, st: st, depth: d.depth + 1, fd: -1}); !replaced {
				return kept
			}
			continue
		}
		err = w.file(d.fd, name, &st)
		if err == nil {
			return false
		}
		// It may have become a directory since the stat (EISDIR on Linux,
		// EPERM on darwin): look again.
		if st, serr := w.m.statAt(d.fd, name); serr != nil || !st.isDir() {
			w.fail("unlinkat", w.path(d)+"/"+name, err)
			return true
		}
	}
	w.fail("openat", w.path(d)+"/"+name, errChanged)
	return true
}

// file unlinks (when removing) and counts the non-directory name of fd.
// A name already gone counts nothing.
func (w *walker) file(fd int, name string, st *stat) error {
	if w.remove {
		err := sysat.Unlinkat(fd, name, 0)
		if isPermission(err) {
			w.loosen(fd)
			err = sysat.Unlinkat(fd, name, 0)
		}
		if err == unix.ENOENT {
			return nil
		}
		if err != nil {
			return err
		}
	}
	w.res.Files++
	left, seen := w.links[st.id]
	if !seen {
		left = st.nlink
	}
	if left > 1 {
		w.links[st.id] = left - 1
		return nil
	}
	delete(w.links, st.id)
	w.res.Bytes += st.blocks * 512
	return nil
}

// openFrame opens the directory name below fd as the closed d, checking
// that it is d. Out of descriptors, it closes those the walk can spare and
// retries, waiting a little: slower beats failing.
func (w *walker) openFrame(d *frame, fd int, name string) error {
	w.shed()
	nfd, err := sysat.OpenatNow(fd, name, sysat.DirFlags, 0)
	if err == unix.EMFILE || err == unix.ENFILE {
		w.maxOpen = 2
		w.shed()
		nfd, err = sysat.Openat(fd, name, sysat.DirFlags, 0)
	}
	if err != nil {
		return err
	}
	st, err := w.m.statAt(nfd, "")
	want := d.st.id
	same := st.id.ino == want.ino && st.id.dev == want.dev && (!st.id.hasMnt || !want.hasMnt || st.id.mnt == want.mnt)
	if err == nil && !same {
		err = errChanged
	}
	if err != nil {
		_ = unix.Close(nfd)
		return err
	}
	d.fd = nfd
	w.open++
	w.peak = max(w.peak, w.open)
	w.lo = min(w.lo, d.depth)
	return nil
}

// shed closes the directories nearest the top while maxOpen or more are
// open, never the deepest two.
func (w *walker) shed() {
	for ; w.open >= w.maxOpen && w.lo < len(w.stack)-2; w.lo++ {
		w.close(w.stack[w.lo])
	}
}

// loosen gives the owner of the open directory fd rwx, unless fd is the
// caller's parent, which a walk never changes.
func (w *walker) loosen(fd int) {
	if fd == w.stack[0].fd {
		return
	}
	if st, err := plainStatAt(fd, ""); err == nil && st.mode&0o700 != 0o700 {
		_ = sysat.Fchmod(fd, st.mode&0o7777|0o700)
	}
}

func (w *walker) close(d *frame) {
	if d.fd >= 0 && d != w.stack[0] {
		_ = unix.Close(d.fd)
		d.fd = -1
		w.open--
	}
}
