// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/fstree"
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
	// WithStopped rule uses Facts.StoppedAge instead, which runs from the
	// later of the two.
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

// Scan finds every candidate data directory under root and classifies it.
// It is read-only: it creates no file or directory and takes a lock only
// for the instant of a probe, so it works on a read-only filesystem. A root
// that does not exist has no candidates and is not an error. A directory
// that cannot be walked does not stop the scan: Scan returns every
// candidate it found together with an error joining a *PathError for each
// such directory. Candidates are sorted by path.
func Scan(root string, opts ...Option) ([]Candidate, error) {
	return ScanContext(context.Background(), root, opts...)
}

// ScanContext is Scan with a context; when ctx ends, it returns the
// candidates classified so far and ctx's error.
func ScanContext(ctx context.Context, root string, opts ...Option) ([]Candidate, error) {
	return scanRoot(ctx, root, probeAll, opts)
}

func scanRoot(ctx context.Context, root string, mode probeMode, opts []Option) ([]Candidate, error) {
	o := newOptions(opts)
	abs, rootDir, err := openRoot(root)
	if rootDir == nil {
		return nil, err
	}
	defer rootDir.Close()
	res := scan(ctx, rootDir, abs, o, mode)
	cands := make([]Candidate, len(res.cands))
	for i, c := range res.cands {
		cands[i] = c.Candidate
	}
	return cands, res.err(ctx)
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
	cands, err := scanRoot(ctx, root, probeOrphans, opts)
	var orphans []Orphan
	for _, c := range cands {
		if c.Class == ClassOrphan {
			orphans = append(orphans, c.orphan())
		}
	}
	return orphans, err
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
}

// scanResult is what a sweep found under root.
type scanResult struct {
	cands []scanned
	// trash lists directories below root (relative, never ".") that hold a
	// per-directory trash left by an earlier Collect.
	trash []string
	errs  []PathError
}

func (r *scanResult) err(ctx context.Context) error {
	errs := make([]error, 0, len(r.errs)+1)
	for i := range r.errs {
		errs = append(errs, &r.errs[i])
	}
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("scan: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// testHookEntered, when set, runs for each directory the walk opened
// (path relative to root) before it looks inside, so tests can remove the
// directory at that instant.
var testHookEntered func(rel string)

// scan walks below rootDir for candidates and classifies them.
//
// Root is looked at first; then its subdirectories are shared among
// GOMAXPROCS goroutines, each walking and observing its share to the end
// (one open of the directory, one of the state file, and for a would-be
// orphan the probes), since the work is syscalls that keep a CPU busy in
// the kernel, and handing each candidate to another goroutine would cost
// about as much as observing it.
//
// Everything is relative to descriptors opened from rootDir without
// following a symlink: the state file that is read, and the directory whose
// lease is probed, are the ones the walk reached, never what a path names
// a moment later. A directory that disappears during the walk is simply
// gone, not an error.
func scan(ctx context.Context, rootDir *os.File, abs string, o *options, mode probeMode) *scanResult {
	s := &scanner{ctx: ctx, abs: abs, o: o, mode: mode, rootDir: rootDir, ob: newObserver(o.now)}
	if fi, err := rootDir.Stat(); err == nil {
		s.rootDev = devOf(fi)
	}
	var fd int
	err := fstree.WithFd(rootDir, func(rfd int) error {
		var err error
		fd, err = fstree.OpenDirAt(rfd, ".")
		return err
	})
	if err != nil {
		s.res.errs = append(s.res.errs, PathError{Path: abs, Err: fmt.Errorf("open root: %w", err)})
		return &s.res
	}
	defer unix.Close(fd)
	k := s.newWalk()
	names := k.visit(fd, ".", 0)
	s.merge(k)
	if len(names) > 0 {
		var next atomic.Int64
		share := func() {
			k := s.newWalk()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(names) || ctx.Err() != nil {
					break
				}
				k.enter(fd, names[i], names[i], 1)
			}
			s.merge(k)
		}
		var wg sync.WaitGroup
		for range min(workers(), len(names)) - 1 {
			wg.Go(share)
		}
		share()
		wg.Wait()
	}
	slices.Sort(s.res.trash)
	slices.SortFunc(s.res.cands, func(a, b scanned) int { return cmp.Compare(a.Path, b.Path) })
	return &s.res
}

// scanner is one scan, shared by its goroutines.
type scanner struct {
	ctx     context.Context
	abs     string
	o       *options
	mode    probeMode
	rootDir *os.File
	rootDev uint64
	ob      *observer

	mu  sync.Mutex // guards res
	res scanResult
}

// walk is one goroutine's share of a scan, merged when it is done.
type walk struct {
	s   *scanner
	res scanResult
}

func (s *scanner) newWalk() *walk { return &walk{s: s} }

func (s *scanner) merge(k *walk) {
	s.mu.Lock()
	s.res.cands = append(s.res.cands, k.res.cands...)
	s.res.trash = append(s.res.trash, k.res.trash...)
	s.res.errs = append(s.res.errs, k.res.errs...)
	s.mu.Unlock()
}

func (k *walk) fail(rel, what string, err error) {
	k.res.errs = append(k.res.errs, PathError{Path: filepath.Join(k.s.abs, rel), Err: fmt.Errorf("%s: %w", what, err)})
}

// enter opens the directory name of parent (at rel, level below root)
// and visits it, descending into what it lists.
func (k *walk) enter(parent int, name, rel string, level int) {
	fd, err := fstree.OpenDirAt(parent, name)
	if err != nil {
		// Gone, or swapped for a symlink since it was listed: not a
		// directory of this tree any more.
		if !isGone(err) {
			k.fail(rel, "open", err)
		}
		return
	}
	names := k.visit(fd, rel, level)
	for _, n := range names {
		k.enter(fd, n, filepath.Join(rel, n), level+1)
	}
	unix.Close(fd)
}

// visit examines the directory open as fd at rel: it observes and
// classifies it when it is a data directory, and returns the names of the
// subdirectories the walk goes on with, if any. It does not close fd.
func (k *walk) visit(fd int, rel string, level int) []string {
	s := k.s
	if s.ctx.Err() != nil {
		return nil
	}
	if testHookEntered != nil {
		testHookEntered(rel)
	}
	path := filepath.Join(s.abs, rel)
	d := state.NewDir(fd, path)
	sf, serr := d.OpenState()
	candidate := !errors.Is(serr, fs.ErrNotExist)
	if candidate {
		k.classify(d, sf, serr, rel)
		if rel != "." {
			// Below root, a data directory holds no other: its
			// subdirectories are the VM's (rootfs-work, the image cache,
			// the embedder's own), and one that looked like a data
			// directory would be reclaimed from under it. Nor is it
			// listed: the state file's open said all there is to know.
			return nil
		}
	}
	if level >= s.o.depth {
		// Too deep to list, but a trash left by a collector killed after
		// its commit may be here.
		var st unix.Stat_t
		if rel != "." && fstree.Lstatat(fd, TrashName, &st) == nil && isDir(&st) {
			k.res.trash = append(k.res.trash, rel)
		}
		return nil
	}
	entries, err := readDirEntries(fd, path)
	if err != nil {
		if !isGone(err) {
			k.fail(rel, "read directory", err)
		}
		return nil
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		if strings.HasPrefix(name, OwnPrefix) {
			if name == TrashName && rel != "." {
				// Left by a collector killed after its commit; root's own
				// trash is emptied before the walk.
				k.res.trash = append(k.res.trash, rel)
			}
			continue
		}
		if candidate && notEntered(name) {
			continue
		}
		names = append(names, name)
	}
	return names
}

// devOfFd returns the device number of the open file fd, 0 when it cannot
// be read.
func devOfFd(fd int) uint64 {
	var st unix.Stat_t
	if fstree.Fstat(fd, &st) != nil {
		return 0
	}
	return uint64(st.Dev)
}

// readDirEntries lists the directory fd through a descriptor of its own,
// so fd's offset and open state stay the caller's.
func readDirEntries(fd int, path string) ([]fs.DirEntry, error) {
	again, err := fstree.OpenDirAt(fd, ".")
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(again), path)
	defer d.Close()
	return d.ReadDir(-1)
}

// classify observes and classifies the candidate d at rel, whose state
// file open gave sf or serr.
func (k *walk) classify(d state.Dir, sf state.StateFile, serr error, rel string) {
	s := k.s
	path := d.Path()
	var f Facts
	var dev uint64
	switch {
	case serr != nil:
		f = s.ob.bare()
		f.StateErr = serr
		if s.mode == probeAll {
			f.LeaseHeld, f.LeaseErr = d.ProbeLease()
		}
		dev = devOfFd(d.Fd())
	case s.mode == probeOrphans:
		// A held lease decides alone, whatever the state says: the common
		// case of a running VM costs no read and no parse. A free lease
		// is probed again after the read (observeAt), as the marker
		// requires.
		held, err := d.ProbeLease()
		if held || err != nil {
			sf.Close()
			f = s.ob.bare()
			f.LeaseHeld, f.LeaseErr = held, err
			// Not looked at for a trash of its own: one left there by a
			// collector cut short is emptied once the directory is an
			// orphan again, or has no state file any more.
			dev = s.rootDev
			break
		}
		fallthrough
	default:
		f, dev = s.ob.observeAt(d, sf, s.o.policy(), s.mode)
	}
	// Only a data directory on another filesystem than root ever gets a
	// trash of its own.
	if rel != "." && dev != s.rootDev {
		var st unix.Stat_t
		if err := fstree.Lstatat(d.Fd(), TrashName, &st); err == nil && isDir(&st) {
			k.res.trash = append(k.res.trash, rel)
		}
	}
	cand := candidateFrom(path, f, s.o.policy())
	if s.o.sizes {
		cand.Bytes = measure(s.ctx, s.rootDir, rel, path, fstree.Options{InUseMarker: state.FileName, InUse: nestedInUse(s.ob, s.o.policy())})
	}
	s.o.logger.Debug("gc: classified", "path", cand.Path, "class", cand.Class, "reason", cand.Reason, "detail", cand.Detail)
	k.res.cands = append(k.res.cands, scanned{Candidate: cand, rel: rel})
}

// candidateFrom turns facts into a Candidate.
func candidateFrom(path string, f Facts, p Policy) Candidate {
	class, reason, detail := Classify(f, p)
	c := Candidate{Path: path, Class: class, Reason: reason, Detail: detail, Bytes: -1}
	if f.State != nil {
		c.PID, c.Name = f.State.PID, f.State.Name
		c.Age = f.Age()
	}
	switch reason {
	case ReasonUnreadable:
		c.Err = f.StateErr
	case ReasonProbeFailed:
		c.Err = cmp.Or(f.LeaseErr, f.LockErr)
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
		if st, err := lstatAt(d, name); err == nil && isRegular(&st) {
			n += freedBy(&st)
		}
	}
	return n
}

// ownedFiles lists the small files go-microvm owns in the data directory
// d, state file and lock last (in that order), since they go last when the
// directory is reclaimed.
func ownedFiles(d *os.File) ([]string, error) {
	r, err := reopenDir(d)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	names, err := r.Readdirnames(-1)
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
