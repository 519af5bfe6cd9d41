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
	// modification time when created_at is unset).
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
	o := newOptions(opts)
	abs, rootDir, err := openRoot(root)
	if rootDir == nil {
		return nil, err
	}
	defer rootDir.Close()
	res := scan(ctx, rootDir, abs, o)
	cands := make([]Candidate, len(res.cands))
	for i, c := range res.cands {
		cands[i] = c.Candidate
	}
	return cands, res.err(ctx)
}

// Orphans lists what Collect would reclaim now, with the same options. It
// is read-only like Scan, and returns errors as Scan does.
func Orphans(root string, opts ...Option) ([]Orphan, error) {
	return OrphansContext(context.Background(), root, opts...)
}

// OrphansContext is Orphans with a context.
func OrphansContext(ctx context.Context, root string, opts ...Option) ([]Orphan, error) {
	cands, err := ScanContext(ctx, root, opts...)
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

// scan walks below rootDir for candidates and classifies them. One
// goroutine walks (the walk is a chain of opens and directory reads, cheap
// and ordered); GOMAXPROCS workers observe the candidates as they are
// found, since observing is several syscalls per candidate.
//
// Everything is relative to descriptors opened from rootDir without
// following a symlink: the state file that is read, and the directory whose
// lease is probed, are the ones the walk reached, never what a path names
// a moment later.
func scan(ctx context.Context, rootDir *os.File, abs string, o *options) *scanResult {
	res := &scanResult{}
	ob := newObserver(o.now)
	var rootDev uint64
	if fi, err := rootDir.Stat(); err == nil {
		rootDev = devOf(fi)
	}
	found := make(chan foundDir, 2*workers())
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers() {
		wg.Go(func() {
			for fd := range found {
				c, trash := classifyAt(ctx, rootDir, abs, fd, rootDev, ob, o)
				mu.Lock()
				res.cands = append(res.cands, c)
				if trash {
					res.trash = append(res.trash, c.rel)
				}
				mu.Unlock()
			}
		})
	}
	w := &walker{ctx: ctx, abs: abs, depth: o.depth, found: found}
	var fd int
	err := withFd(rootDir, func(rfd int) error {
		var err error
		fd, err = openat(rfd, ".", openDirFlags)
		return err
	})
	if err != nil {
		w.errs = append(w.errs, PathError{Path: abs, Err: fmt.Errorf("open root: %w", err)})
	} else {
		w.enter(fd, ".", 0)
	}
	close(found)
	wg.Wait()
	res.trash = append(res.trash, w.trash...)
	res.errs = w.errs
	slices.Sort(res.trash)
	slices.SortFunc(res.cands, func(a, b scanned) int { return cmp.Compare(a.Path, b.Path) })
	return res
}

// foundDir is a candidate the walker hands to a worker, which closes both
// descriptors.
type foundDir struct {
	rel string
	dir int
	// stateFd is the open state file, -1 when it could not be opened
	// (stateErr says why).
	stateFd  int
	stateErr error
}

func (f *foundDir) close() {
	unix.Close(f.dir)
	if f.stateFd >= 0 {
		unix.Close(f.stateFd)
	}
}

// classifyAt observes and classifies the candidate fd. trash reports a
// per-directory trash in it.
func classifyAt(ctx context.Context, rootDir *os.File, abs string, fd foundDir, rootDev uint64, ob *observer, o *options) (c scanned, trash bool) {
	defer fd.close()
	path := filepath.Join(abs, fd.rel)
	f, dev := ob.observeAt(fd, path, o.policy())
	// Only a data directory on another filesystem than root ever gets a
	// trash of its own.
	if fd.rel != "." && dev != rootDev {
		var st unix.Stat_t
		if err := fstatat(fd.dir, TrashName, &st); err == nil && isDir(&st) {
			trash = true
		}
	}
	cand := candidateFrom(path, f, o.policy())
	if o.sizes {
		cand.Bytes = measure(ctx, rootDir, fd.rel, path)
	}
	o.logger.Debug("gc: classified", "path", cand.Path, "class", cand.Class, "reason", cand.Reason, "detail", cand.Detail)
	return scanned{Candidate: cand, rel: fd.rel}, trash
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
func measure(ctx context.Context, rootDir *os.File, rel, path string) int64 {
	d, err := fstree.OpenDir(rootDir, rel)
	if err != nil {
		return -1
	}
	defer d.Close()
	// A partial measure (an unreadable corner, a spent context) still
	// counts what it saw.
	r, _ := fstree.SizeAt(ctx, d, rootfsWorkName, filepath.Join(path, rootfsWorkName))
	n := r.Bytes
	names, _ := ownedFiles(d)
	for _, name := range names {
		if st, err := lstatAt(d, name); err == nil && isRegular(&st) {
			n += allocated(&st)
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
// enters.
func notEntered(name string) bool {
	switch name {
	case rootfsWorkName, cacheName, state.FileName, state.LockFileName, consoleLogName, vmLogName:
		return true
	}
	return false
}

// walker finds candidates: root itself and directories down to depth
// below it that hold a state file, reached only through directories opened
// with O_NOFOLLOW, so a symlink never leads it out of root.
type walker struct {
	ctx   context.Context
	abs   string
	depth int
	found chan<- foundDir
	trash []string
	errs  []PathError
}

// enter examines the directory open as fd at rel, and closes it: it hands
// it to a worker when it is a data directory, else lists it for more.
func (w *walker) enter(fd int, rel string, level int) {
	if w.ctx.Err() != nil {
		unix.Close(fd)
		return
	}
	path := filepath.Join(w.abs, rel)
	sfd, serr := openStateAt(fd, filepath.Join(path, state.FileName))
	candidate := !errors.Is(serr, fs.ErrNotExist)
	if candidate {
		if rel != "." {
			// Below root, a data directory holds no other: its
			// subdirectories are the VM's (rootfs-work, the image cache,
			// the embedder's own), and one that looked like a data
			// directory would be reclaimed from under it.
			w.found <- foundDir{rel: rel, dir: fd, stateFd: sfd, stateErr: serr}
			return
		}
		// Root is the one data directory that can hold others beside it.
		again, err := openat(fd, ".", openDirFlags)
		if err != nil {
			if sfd >= 0 {
				unix.Close(sfd)
			}
			w.errs = append(w.errs, PathError{Path: path, Err: fmt.Errorf("open: %w", err)})
		} else {
			w.found <- foundDir{rel: rel, dir: again, stateFd: sfd, stateErr: serr}
		}
	}
	if level >= w.depth {
		// Too deep to list, but a trash left by a collector killed after
		// its commit may be here.
		var st unix.Stat_t
		if rel != "." && fstatat(fd, TrashName, &st) == nil && isDir(&st) {
			w.trash = append(w.trash, rel)
		}
		unix.Close(fd)
		return
	}
	dir := os.NewFile(uintptr(fd), path)
	defer dir.Close()
	entries, err := dir.ReadDir(-1)
	if err != nil {
		w.errs = append(w.errs, PathError{Path: path, Err: fmt.Errorf("read directory: %w", err)})
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() {
			continue
		}
		if strings.HasPrefix(name, OwnPrefix) {
			if name == TrashName && rel != "." {
				// Left by a collector killed after its commit; root's own
				// trash is emptied before the walk.
				w.trash = append(w.trash, rel)
			}
			continue
		}
		if candidate && notEntered(name) {
			continue
		}
		childRel := filepath.Join(rel, name)
		cfd, err := openat(fd, name, openDirFlags)
		if err != nil {
			// Gone, or swapped for a symlink since it was listed: not a
			// directory of this tree any more.
			if !isGone(err) {
				w.errs = append(w.errs, PathError{Path: filepath.Join(w.abs, childRel), Err: fmt.Errorf("open: %w", err)})
			}
			continue
		}
		w.enter(cfd, childRel, level+1)
	}
}
