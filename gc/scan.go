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
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
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
	// evidence decided, e.g. the parse error or "pid 123 started 5s after
	// the record".
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
			switch {
			case err != nil:
				if !yield(Orphan{}, err) {
					return
				}
			case c.Class == ClassOrphan:
				if !yield(c.orphan(), nil) {
					return
				}
			}
		}
	}
}

// streamBatch is how many decided candidates a walk goroutine hands its
// consumer at once; streamDepth is how many such batches may wait before
// the walk pauses. A handover per candidate would wake the consumer (and
// spin an idle thread) per directory, costing more CPU than the batching's
// small delay.
const (
	streamBatch = 32
	streamDepth = 4
)

// streamItem is what a streaming scan hands its consumer.
type streamItem struct {
	cand Candidate
	err  error
}

// scanSeq runs the walk on its own goroutines and yields what it decides
// on the caller's goroutine.
func scanSeq(ctx context.Context, root string, mode probeMode, opts []Option) iter.Seq2[Candidate, error] {
	return func(yield func(Candidate, error) bool) {
		o := newOptions(opts)
		abs, rootDir, err := openRoot(root)
		if rootDir == nil {
			if err != nil {
				yield(Candidate{}, err)
			}
			return
		}
		defer rootDir.Close()
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		items := make(chan []streamItem, streamDepth)
		s := newScanner(wctx, rootDir, abs, o, mode)
		s.stream = items
		go func() {
			defer close(items)
			s.run()
		}()
		for batch := range items {
			for _, it := range batch {
				if !yield(it.cand, it.err) {
					stop()
					for range items {
					}
					return
				}
			}
		}
		if ctx.Err() != nil {
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
	dir, err = os.OpenFile(abs, os.O_RDONLY|dirFlag, 0)
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
	rel string
	// leftover: not a data directory but the embedder's leftovers
	// (judge.Facts.Leftover).
	leftover bool
}

// scanResult is what a sweep found under root.
type scanResult struct {
	cands []scanned
	errs  []*fs.PathError
	// remnants are the directories below root (rel) that hold a state
	// lock file and no state file: what a reclaim cut short after its
	// commit may leave (Collect only).
	remnants []string
}

// scan walks below rootDir for candidates and classifies them, keeping
// them all (sorted by path) for Collect.
func scan(ctx context.Context, rootDir *os.File, abs string, o *options, mode probeMode) *scanResult {
	s := newScanner(ctx, rootDir, abs, o, mode)
	s.run()
	slices.SortFunc(s.res.cands, func(a, b scanned) int { return cmp.Compare(a.Path, b.Path) })
	return &s.res
}

// dirent is one entry of a directory listing, with the type the listing
// gave.
type dirent struct {
	name string
	typ  entryType
}

// entryType is the type of a listed entry, as far as the walk cares.
type entryType uint8

const (
	typeOther   entryType = iota // not a directory
	typeDir                      // a directory
	typeUnknown                  // the listing did not say (DT_UNKNOWN)
)

// scanner is one scan, shared by its goroutines. Root's entries, read in
// batches and never held whole, are shared among GOMAXPROCS goroutines,
// each walking the entry it took to the end: handing each candidate to
// another goroutine would cost about as much as observing it.
type scanner struct {
	ctx     context.Context
	abs     string
	o       *options
	mode    probeMode
	rootDir *os.File
	// obOnce makes ob on first use: a scan that meets no data directory
	// never reads the boot facts.
	obOnce sync.Once
	ob     *judge.Observer
	// stream, when set, receives the candidates and errors in batches
	// as they are decided, instead of res.
	stream chan<- []streamItem
	debug  bool // the logger takes Debug lines

	mu  sync.Mutex // guards res
	res scanResult
}

func newScanner(ctx context.Context, rootDir *os.File, abs string, o *options, mode probeMode) *scanner {
	s := &scanner{ctx: ctx, abs: abs, o: o, mode: mode, rootDir: rootDir}
	s.debug = o.logger.Enabled(ctx, slog.LevelDebug)
	return s
}

// observer returns the scan's observer, made on first use.
func (s *scanner) observer() *judge.Observer {
	s.obOnce.Do(func() { s.ob = judge.NewObserver(s.o.now) })
	return s.ob
}

// run walks the tree.
func (s *scanner) run() {
	fd, err := sysat.Openat(int(s.rootDir.Fd()), ".", sysat.DirFlags, 0)
	if err != nil {
		k := s.newWalk()
		k.failPath("open root", s.abs, err)
		s.merge(k)
		return
	}
	defer unix.Close(fd)
	k := s.newWalk()
	candidate, list := k.visit(fd, ".", 0)
	var r *dirReader
	if list {
		if r, err = newDirReader(fd); err != nil {
			if !isGone(err) {
				k.fail(".", "read directory", err)
			}
			list = false
		}
	}
	s.merge(k)
	if !list {
		return
	}
	defer r.close()
	shared := &sharedLister{r: r, fd: fd, candidate: candidate}
	share := func() {
		k := s.newWalk()
		for s.ctx.Err() == nil {
			e, ok := shared.next(k)
			if !ok {
				break
			}
			_, left := k.enter(fd, e, e.name, 1)
			for _, l := range left {
				k.decided(l)
			}
		}
		s.merge(k)
	}
	var wg sync.WaitGroup
	for range scanWorkers(s.o.depth) - 1 {
		wg.Go(share)
	}
	share()
	wg.Wait()
}

// sharedLister hands root's entries to the walk's goroutines, one at a
// time, reading the listing a batch at a time.
type sharedLister struct {
	mu        sync.Mutex
	r         *dirReader
	fd        int // root's descriptor, for entries of unknown type
	candidate bool
	done      bool
}

// next returns the next entry of root the walk enters.
func (l *sharedLister) next(k *walk) (dirent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.done {
		e, ok, err := l.r.next()
		if err != nil {
			if !isGone(err) {
				k.fail(".", "read directory", err)
			}
			l.done = true
			break
		}
		if !ok {
			l.done = true
			break
		}
		if k.keep(l.fd, &e, ".", l.candidate) {
			return e, true
		}
	}
	return dirent{}, false
}

// walk is one goroutine's share of a scan, merged when it is done.
type walk struct {
	s     *scanner
	res   scanResult
	batch []streamItem // not yet streamed
}

func (s *scanner) newWalk() *walk { return &walk{s: s} }

func (s *scanner) merge(k *walk) {
	k.flush()
	s.mu.Lock()
	s.res.cands = append(s.res.cands, k.res.cands...)
	s.res.errs = append(s.res.errs, k.res.errs...)
	s.res.remnants = append(s.res.remnants, k.res.remnants...)
	s.mu.Unlock()
}

// pathOf returns the absolute path of rel.
func (s *scanner) pathOf(rel string) string {
	switch {
	case rel == ".":
		return s.abs
	case strings.HasSuffix(s.abs, "/"):
		return s.abs + rel
	}
	return s.abs + "/" + rel
}

// emit hands over a decided candidate.
func (k *walk) emit(c scanned) {
	if k.s.stream != nil {
		k.stream(streamItem{cand: c.Candidate})
		return
	}
	k.res.cands = append(k.res.cands, c)
}

// stream queues it for the consumer, handing over a full batch.
func (k *walk) stream(it streamItem) {
	if k.batch == nil {
		k.batch = make([]streamItem, 0, streamBatch)
	}
	k.batch = append(k.batch, it)
	if len(k.batch) == streamBatch {
		k.flush()
	}
}

// flush hands the queued batch to the consumer.
func (k *walk) flush() {
	s := k.s
	if len(k.batch) == 0 {
		return
	}
	select {
	case s.stream <- k.batch:
	case <-s.ctx.Done():
	}
	k.batch = nil
}

func (k *walk) fail(rel, what string, err error) {
	k.failPath(what, k.s.pathOf(rel), err)
}

func (k *walk) failPath(op, path string, err error) {
	e := pathError(op, path, err)
	if k.s.stream != nil {
		k.stream(streamItem{err: e})
		return
	}
	k.res.errs = append(k.res.errs, e)
}

// keep reports whether the walk enters the entry e of the directory dirfd
// at rel, whose own verdict made it a candidate or not; it notes a trash
// left there. An entry of unknown type is looked at (without following a
// symlink) to learn it.
func (k *walk) keep(dirfd int, e *dirent, rel string, candidate bool) bool {
	if e.typ == typeUnknown {
		var st unix.Stat_t
		if sysat.Fstatat(dirfd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || !sysat.IsDir(&st) {
			return false
		}
		e.typ = typeDir
	}
	if e.typ != typeDir {
		return false
	}
	if strings.HasPrefix(e.name, OwnPrefix) {
		return false
	}
	return !candidate || !notEntered(e.name)
}

// enter opens the entry e of parent and visits it, descending into what it
// lists. It reports whether a data directory is, or may be, at or below it
// (occupied), and the embedders' leftovers found there, not yet handed over.
func (k *walk) enter(parent int, e dirent, rel string, level int) (occupied bool, left []scanned) {
	fd, err := sysat.Openat(parent, e.name, sysat.DirFlags, 0)
	if err != nil {
		// Gone, or swapped for a symlink since it was listed: not a
		// directory of this tree any more. Any other failure hides what
		// it holds.
		if !isGone(err) {
			k.fail(rel, "open", err)
			return true, nil
		}
		return false, nil
	}
	defer unix.Close(fd)
	candidate, list := k.visit(fd, rel, level)
	if !list {
		return candidate, nil
	}
	occupied, owned, left := k.list(fd, rel, level, candidate)
	if owned && !occupied {
		return false, []scanned{k.leftover(fd, rel)}
	}
	return occupied, left
}

// list reads the directory fd at rel (level below root) and enters the
// entries the walk descends into. It reports whether a data directory is,
// or may be, among or below them (a listing cut short may hide one),
// whether the entries are the embedder's leftovers (at least one owned
// entry, and nothing else but an idle collector lock), and the leftovers
// found below.
func (k *walk) list(fd int, rel string, level int, candidate bool) (occupied, owned bool, left []scanned) {
	s := k.s
	r, err := newDirReader(fd)
	if err != nil {
		if !isGone(err) {
			k.fail(rel, "read directory", err)
		}
		return true, false, nil
	}
	defer r.close()
	owned = len(s.o.owned) > 0
	n := 0
	for s.ctx.Err() == nil {
		c, ok, err := r.next()
		if err != nil {
			if !isGone(err) {
				k.fail(rel, "read directory", err)
			}
			return true, false, left
		}
		if !ok {
			return occupied, owned && n > 0, left
		}
		if owned && c.name != LockName() {
			owned = s.o.ownedAt(fd, c.name)
			n++
		}
		if k.keep(fd, &c, rel, candidate) && level < s.o.depth {
			o, l := k.enter(fd, c, rel+"/"+c.name, level+1)
			occupied = occupied || o
			left = append(left, l...)
		}
	}
	return true, false, left
}

// leftover decides the directory fd at rel, whose entries are the
// embedder's leftovers.
func (k *walk) leftover(fd int, rel string) scanned {
	s := k.s
	path := s.pathOf(rel)
	f := judge.Facts{Leftover: true, Now: s.o.now()}
	f.LeaseHeld, f.LeaseErr = datadir.NewDir(fd, path).ProbeLease()
	cand := candidateFrom(path, f, s.o.policy())
	if s.o.sizes {
		// Nothing in it is go-microvm's.
		cand.Bytes = 0
	}
	return scanned{Candidate: cand, rel: rel, leftover: true}
}

// visit examines the directory open as fd at rel: it observes and
// classifies it when it is a data directory, and reports whether it was a
// candidate and whether the walk lists it for subdirectories. It does not
// close fd.
func (k *walk) visit(fd int, rel string, level int) (candidate, list bool) {
	s := k.s
	if s.ctx.Err() != nil {
		return false, false
	}
	if s.o.hooks.entered != nil {
		s.o.hooks.entered(rel)
	}
	d := datadir.NewDir(fd, s.pathOf(rel))
	sf, serr := d.OpenState()
	candidate = !errors.Is(serr, fs.ErrNotExist)
	if candidate {
		if outOfFiles(serr) {
			// Not a verdict: the next run, with descriptors, decides.
			k.fail(rel, "observe", serr)
		} else {
			k.classify(d, sf, serr, rel)
		}
		if rel != "." {
			// Below root, a data directory holds no other: its
			// subdirectories are the VM's (rootfs-work, the image cache,
			// the embedder's own), and one that looked like a data
			// directory would be reclaimed from under it. Nor is it
			// listed: the state file's open said all there is to know.
			return true, false
		}
	}
	var st unix.Stat_t
	if !candidate && rel != "." && s.mode == probeOrphans && sysat.Fstatat(fd, state.LockFileName, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		k.res.remnants = append(k.res.remnants, rel)
	}
	if level >= s.o.depth && (rel == "." || len(s.o.owned) == 0) {
		// Too deep to list. With owned names, a directory this deep is
		// listed, not entered, to tell whether it is the embedder's
		// leftovers.
		return candidate, false
	}
	return candidate, true
}

// classify observes and classifies the candidate d at rel, whose state
// file open gave sf or serr.
func (k *walk) classify(d datadir.Dir, sf datadir.StateFile, serr error, rel string) {
	s := k.s
	path := d.Path()
	var f judge.Facts
	switch {
	case serr != nil:
		f = s.observer().Bare()
		f.StateErr = serr
		if s.mode == probeAll {
			f.LeaseHeld, f.LeaseErr = d.ProbeLease()
		}
	case s.mode == probeOrphans:
		// A held lease decides alone, whatever the state says: the common
		// case of a running VM costs no read and no parse. A free lease
		// is probed again after the read (observeAt), as the marker
		// requires.
		held, err := d.ProbeLease()
		if held || err != nil {
			_ = sf.Close()
			f = s.observer().Bare()
			f.LeaseHeld, f.LeaseErr = held, err
			break
		}
		fallthrough
	default:
		f = observeAt(s.observer(), d, sf, s.o.policy(), s.mode)
	}
	for _, err := range []error{f.StateErr, f.LeaseErr, f.LockErr, f.Process.Err} {
		if outOfFiles(err) {
			k.fail(rel, "observe", err)
			return
		}
	}
	cand := candidateFrom(path, f, s.o.policy())
	if s.o.sizes {
		cand.Bytes = measure(s.ctx, s.rootDir, rel, path, fstree.Options{InUseMarker: state.FileName, InUse: nestedInUse(s.observer(), s.o.policy())})
	}
	k.decided(scanned{Candidate: cand, rel: rel})
}

// decided logs, reports and hands over the candidate sc.
func (k *walk) decided(sc scanned) {
	cand := sc.Candidate
	if k.s.debug {
		k.s.o.logger.Debug("gc: classified", "path", cand.Path, "class", cand.Class, "reason", cand.Reason, "detail", cand.Detail)
	}
	if k.s.o.progress != nil {
		k.s.o.progress(Progress{Kind: ProgressClassified, Candidate: cand})
	}
	k.emit(sc)
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
// directory at rel, or -1 when it cannot be opened.
func measure(ctx context.Context, rootDir *os.File, rel, path string, to fstree.Options) int64 {
	d, err := fstree.OpenDir(rootDir, rel)
	if err != nil {
		return -1
	}
	defer d.Close()
	// A partial measure (an unreadable corner, a spent context) still
	// counts what it saw.
	r, _ := to.SizeAt(ctx, d, rootfsWorkName, filepath.Join(path, rootfsWorkName))
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
	hasState, hasLock := false, false
	for _, name := range names {
		switch name {
		case consoleLogName, vmLogName:
			owned = append(owned, name)
		case state.FileName:
			hasState = true
		case state.LockFileName:
			hasLock = true
		default:
			if ok, _ := filepath.Match(state.TempPattern, name); ok {
				owned = append(owned, name)
			}
		}
	}
	if hasState {
		owned = append(owned, state.FileName)
	}
	if hasLock {
		owned = append(owned, state.LockFileName)
	}
	return owned, nil
}

// workers is how many goroutines observe or delete at once: the work is
// mostly syscalls, which keep a CPU busy in the kernel.
func workers() int { return runtime.GOMAXPROCS(0) }

// notEntered reports the names in a data directory that the search never
// enters: the rootfs clone (a guest image may hold anything, a state file
// included) and the image cache are go-microvm's own there. Elsewhere
// these names are ordinary directories, and a VM may be named after them.
func notEntered(name string) bool {
	switch name {
	case rootfsWorkName, cacheName, state.FileName, state.LockFileName, consoleLogName, vmLogName:
		return true
	}
	return false
}
