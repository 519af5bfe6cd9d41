// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/internal/sysat"
	"github.com/stacklok/go-microvm/state"
)

// Names inside a data directory that go-microvm owns besides the state
// files, as released go-microvm writes them.
const (
	rootfsWorkName = "rootfs-work"
	consoleLogName = "console.log"
	vmLogName      = "vm.log"
	// cacheName is the image cache of the layout where root itself is the
	// data directory. It is never entered, never removed.
	cacheName = "cache"
)

// Candidate is one data directory found under root, with its verdict.
type Candidate struct {
	// Path is the absolute path of the data directory.
	Path string
	// Class and Reason are the verdict; Detail says, for humans, what
	// evidence decided it.
	Class  Class
	Reason Reason
	Detail string
	// PID is the recorded runner PID, 0 when none or unreadable.
	PID int
	// Name is the VM name from the state, "" when unreadable.
	Name string
	// Age is the time since created_at (or since the state file's
	// modification time when created_at is unset), for display. The
	// WithStopped rule measures from the later of the two instead.
	Age time.Duration
	// Bytes is the allocated size of what go-microvm owns in the directory
	// (rootfs-work, state, lock, logs); -1 unless WithSizes.
	Bytes int64
	// Err is the read error of a ClassUnreadable candidate (or the probe
	// error of a ReasonProbeFailed one), nil otherwise.
	Err error
}

// Orphan is a data directory that Collect would reclaim, or has reclaimed.
type Orphan struct {
	// Path is the absolute path of the data directory.
	Path string
	// Reason says why it is an orphan.
	Reason Reason
	// PID is the recorded runner PID, 0 when none.
	PID int
	// Bytes is what Collect freed, or what Orphans measured with
	// WithSizes; 0 otherwise.
	Bytes int64
}

// Scan finds and classifies every candidate under root, sorted by path. It
// creates nothing, so it works on a read-only filesystem; a missing root has
// no candidates. A directory that cannot be walked adds a *fs.PathError to
// the joined error returned beside every candidate found.
func Scan(root string, opts ...Option) ([]Candidate, error) {
	return ScanContext(context.Background(), root, opts...)
}

// ScanContext is Scan with a context; when ctx ends, it returns the
// candidates classified so far and ctx's error.
func ScanContext(ctx context.Context, root string, opts ...Option) ([]Candidate, error) {
	return gather(ScanSeq(ctx, root, opts...), func(c Candidate) string { return c.Path })
}

// gather collects what seq yields, sorted by path, and joins the errors
// it yields between them.
func gather[T any](seq iter.Seq2[T, error], path func(T) string) ([]T, error) {
	var items []T
	var errs []error
	for it, err := range seq {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b T) int { return cmp.Compare(path(a), path(b)) })
	return items, errors.Join(errs...)
}

// ScanSeq is Scan as an iterator in constant memory: it yields each
// candidate as it is classified, in no order. A failure yields a zero
// Candidate and the error: a *fs.PathError per unwalkable directory (the
// scan goes on), root's open error (it ends), last ctx's error.
func ScanSeq(ctx context.Context, root string, opts ...Option) iter.Seq2[Candidate, error] {
	return scanSeq(ctx, root, probeAll, opts)
}

// Orphans lists what Collect would reclaim now, with the same options. It
// is read-only like Scan, and returns errors as Scan does. It probes the
// locks of a directory only when they can change the verdict, so it is
// cheaper than Scan.
func Orphans(root string, opts ...Option) ([]Orphan, error) {
	return OrphansContext(context.Background(), root, opts...)
}

// OrphansContext is Orphans with a context.
func OrphansContext(ctx context.Context, root string, opts ...Option) ([]Orphan, error) {
	return gather(OrphansSeq(ctx, root, opts...), func(o Orphan) string { return o.Path })
}

// OrphansSeq is Orphans as an iterator, in the way of ScanSeq: it yields
// each orphan as soon as it is found, in no particular order, and the
// errors as ScanSeq does.
func OrphansSeq(ctx context.Context, root string, opts ...Option) iter.Seq2[Orphan, error] {
	return func(yield func(Orphan, error) bool) {
		for c, err := range scanSeq(ctx, root, probeOrphans, opts) {
			if err == nil && c.Class != ClassOrphan {
				continue
			}
			// Beside an error, c is zero and so is its Orphan.
			if !yield(c.orphan(), err) {
				return
			}
		}
	}
}

// scanSeq walks on the caller's goroutine and yields each verdict as it
// is made.
func scanSeq(ctx context.Context, root string, mode probeMode, opts []Option) iter.Seq2[Candidate, error] {
	return func(yield func(Candidate, error) bool) {
		_, rootDir, err := openRoot(root)
		if rootDir == nil {
			if err != nil {
				yield(Candidate{}, err)
			}
			return
		}
		defer rootDir.Close()
		w := &walk{ctx: ctx, o: newOptions(opts), mode: mode, yield: yield}
		w.run(rootDir)
		if !w.stopped && ctx.Err() != nil {
			yield(Candidate{}, fmt.Errorf("scan: %w", ctx.Err()))
		}
	}
}

func (c *Candidate) orphan() Orphan {
	return Orphan{Path: c.Path, Reason: c.Reason, PID: c.PID, Bytes: max(c.Bytes, 0)}
}

// openRoot resolves root and opens it. A root that does not exist yields
// (abs, nil, nil): nothing to do.
func openRoot(root string) (abs string, dir *os.File, err error) {
	abs, err = filepath.Abs(root)
	if err != nil {
		return "", nil, fmt.Errorf("resolve root: %w", err)
	}
	// The root itself is the caller's choice: a symlink to it is followed.
	// Nothing below it ever is.
	dir, err = os.OpenFile(abs, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return abs, nil, nil
	}
	if err != nil {
		return abs, nil, fmt.Errorf("open root: %w", err)
	}
	return abs, dir, nil
}

// scanned is a candidate with its path relative to root ("." for root).
type scanned struct {
	Candidate
	rel      string
	leftover bool // the embedder's leftovers, not a data directory
}

// walk is one scan, depth first on one goroutine.
type walk struct {
	ctx  context.Context
	o    *options
	mode probeMode
	// ob is made on first use: a scan that meets no data directory never
	// reads the boot facts.
	ob *judge.Observer
	// Verdicts and errors go to yield when set (stopped once it returns
	// false), else to cands and errs, and remnants lists what a reclaim cut
	// short after its commit leaves: a state lock and no state file.
	yield    func(Candidate, error) bool
	stopped  bool
	cands    []scanned
	errs     []*fs.PathError
	remnants []string
}

func (w *walk) observer() *judge.Observer {
	if w.ob == nil {
		w.ob = judge.NewObserver(w.o.now)
	}
	return w.ob
}

func (w *walk) done() bool { return w.stopped || w.ctx.Err() != nil }

func (w *walk) run(root *os.File) {
	_, left := w.enter(root, ".", ".", 0)
	for _, l := range left {
		w.decided(l)
	}
}

func (w *walk) fail(op, path string, err error) {
	if w.yield == nil {
		w.errs = append(w.errs, pathError(op, path, err))
	} else if !w.stopped && !w.yield(Candidate{}, pathError(op, path, err)) {
		w.stopped = true
	}
}

// decided logs, reports and hands over the candidate sc.
func (w *walk) decided(sc scanned) {
	if w.stopped {
		return
	}
	cand := sc.Candidate
	if w.o.logger.Enabled(w.ctx, slog.LevelDebug) {
		w.o.logger.Debug("gc: classified", "path", cand.Path, "class", cand.Class, "reason", cand.Reason, "detail", cand.Detail)
	}
	if w.o.progress != nil {
		w.o.progress(Progress{Kind: ProgressClassified, Candidate: cand})
	}
	if w.yield == nil {
		w.cands = append(w.cands, sc)
	} else if !w.yield(cand, nil) {
		w.stopped = true
	}
}

// enters reports whether the walk enters the entry e, never a symlink. In
// a data directory (candidate), go-microvm's own names are not entered (a
// guest image may hold anything); elsewhere they may name a VM.
func enters(e fs.DirEntry, candidate bool) bool {
	if !e.IsDir() || strings.HasPrefix(e.Name(), OwnPrefix) {
		return false
	}
	switch e.Name() {
	case rootfsWorkName, cacheName, state.FileName, state.LockFileName, consoleLogName, vmLogName:
		return !candidate
	}
	return true
}

// enter opens the entry name of parent and visits it, descending into what
// it lists. It reports whether a data directory is, or may be, at or below
// it (occupied), and the embedders' leftovers at or below it (never root),
// not yet handed over.
func (w *walk) enter(parent *os.File, name, rel string, level int) (occupied bool, left []scanned) {
	path := filepath.Join(parent.Name(), name)
	d, err := openDirAt(parent, name, path)
	if err != nil {
		// Gone or swapped for a symlink since listed: no longer in the
		// tree. Any other failure hides what it holds.
		if !isGone(err) {
			w.fail("open", path, err)
			return true, nil
		}
		return false, nil
	}
	defer d.Close()
	candidate, list := w.visit(d, rel, level)
	if !list {
		return candidate, nil
	}
	occupied, left = w.list(d, rel, level, candidate)
	if occupied || rel == "." || len(w.o.owned) == 0 {
		return occupied, left
	}
	if n, ok := w.o.ownedOnly(d, ""); !ok || n == 0 {
		return false, left
	}
	f := judge.Facts{Leftover: true, Now: w.o.now()}
	f.LeaseHeld, f.LeaseErr = dirOf(d, path).ProbeLease()
	cand := candidateFrom(path, f, w.o.policy())
	if w.o.sizes {
		cand.Bytes = 0 // nothing in it is go-microvm's
	}
	return false, []scanned{{Candidate: cand, rel: rel, leftover: true}}
}

// list reads the directory d at rel (level below root), entering what the
// walk descends into. It reports whether a data directory is, or may be,
// below (a listing cut short may hide one), and the leftovers found below.
func (w *walk) list(d *os.File, rel string, level int, candidate bool) (occupied bool, left []scanned) {
	for {
		entries, err := d.ReadDir(256)
		for _, e := range entries {
			if w.done() {
				return true, left
			}
			if level < w.o.depth && enters(e, candidate) {
				o, l := w.enter(d, e.Name(), path.Join(rel, e.Name()), level+1)
				occupied = occupied || o
				left = append(left, l...)
			}
		}
		if err == io.EOF {
			return occupied, left
		}
		if err != nil {
			if !isGone(err) {
				w.fail("read directory", d.Name(), err)
			}
			return true, left
		}
	}
}

// visit examines the directory d at rel: it observes and classifies it
// when it is a data directory, and reports whether it was a candidate and
// whether the walk lists it for subdirectories.
func (w *walk) visit(d *os.File, rel string, level int) (candidate, list bool) {
	if w.done() {
		return false, false
	}
	runHook(w.o.hooks.entered, rel)
	sf, serr := dirOf(d, d.Name()).OpenState()
	candidate = !errors.Is(serr, fs.ErrNotExist)
	if candidate {
		if outOfFiles(serr) {
			// Not a verdict: the next run, with descriptors, decides.
			w.fail("observe", d.Name(), serr)
		} else {
			w.classify(d, sf, serr, rel)
		}
		if rel != "." {
			// Below root, a data directory holds no other: what looks
			// like one in it is the VM's, not to be reclaimed under it.
			return true, false
		}
	}
	var st unix.Stat_t
	if !candidate && rel != "." && w.yield == nil && sysat.Fstatat(int(d.Fd()), state.LockFileName, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		w.remnants = append(w.remnants, rel)
	}
	// Too deep to list. With owned names, a directory this deep is
	// listed, not entered, to tell whether it is the embedder's leftovers.
	return candidate, level < w.o.depth || (rel != "." && len(w.o.owned) > 0)
}

// classify observes and classifies the candidate d at rel, whose state
// file open gave sf or serr.
func (w *walk) classify(d *os.File, sf datadir.StateFile, serr error, rel string) {
	dd := dirOf(d, d.Name())
	var f judge.Facts
	switch {
	case serr != nil:
		f = w.observer().Bare()
		f.StateErr = serr
		if w.mode == probeAll {
			f.LeaseHeld, f.LeaseErr = dd.ProbeLease()
		}
	case w.mode == probeOrphans:
		// A held lease decides alone: a running VM costs no read and no
		// parse. A free one is probed again after the read (observeAt).
		held, err := dd.ProbeLease()
		if held || err != nil {
			_ = sf.Close()
			f = w.observer().Bare()
			f.LeaseHeld, f.LeaseErr = held, err
			break
		}
		fallthrough
	default:
		f = observeAt(w.observer(), dd, sf, w.o.policy(), w.mode)
	}
	for _, err := range []error{f.StateErr, f.LeaseErr, f.LockErr, f.Process.Err} {
		if outOfFiles(err) {
			w.fail("observe", d.Name(), err)
			return
		}
	}
	cand := candidateFrom(d.Name(), f, w.o.policy())
	if w.o.sizes {
		cand.Bytes = measure(w.ctx, d, treeOptions(w.observer(), w.o.policy()))
	}
	w.decided(scanned{Candidate: cand, rel: rel})
}

func candidateFrom(path string, f judge.Facts, p judge.Policy) Candidate {
	v := judge.Classify(f, p)
	c := Candidate{Path: path, Class: v.Class, Reason: v.Reason, Detail: v.Detail, Bytes: -1}
	if f.State != nil {
		c.PID, c.Name = f.State.PID, f.State.Name
		c.Age = f.Age()
	}
	switch v.Reason {
	case ReasonUnreadable:
		c.Err = f.StateErr
	case ReasonProbeFailed:
		c.Err = cmp.Or(f.LeaseErr, f.LockErr)
	default:
		// The other reasons are decisions, not failures: no error.
	}
	return c
}

// measure returns the allocated bytes of what go-microvm owns in the data
// directory d. A partial measure (an unreadable corner, a spent context)
// still counts what it saw.
func measure(ctx context.Context, d *os.File, to fstree.Options) int64 {
	r, _ := to.SizeAt(ctx, d, rootfsWorkName, filepath.Join(d.Name(), rootfsWorkName))
	n := r.Bytes
	names, _ := ownedFiles(d)
	for _, name := range names {
		var st unix.Stat_t
		if err := sysat.Fstatat(int(d.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && sysat.IsRegular(&st) {
			n += freedBy(&st)
		}
	}
	return n
}

// ownedFiles lists the small files go-microvm owns in the data directory
// d, state file and lock last (in that order), since they go last when the
// directory is reclaimed.
func ownedFiles(d *os.File) ([]string, error) {
	names, err := dirNames(d)
	if err != nil {
		return nil, err
	}
	var owned []string
	for _, name := range names {
		temp, _ := filepath.Match(state.TempPattern, name)
		if temp || name == consoleLogName || name == vmLogName {
			owned = append(owned, name)
		}
	}
	for _, name := range []string{state.FileName, state.LockFileName} {
		if slices.Contains(names, name) {
			owned = append(owned, name)
		}
	}
	return owned, nil
}
