// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/internal/sysat"
	"github.com/stacklok/go-microvm/state"
)

// errKeepFailed is wrapped by the error of a WithKeep function that did
// not return: it panicked, or ended its goroutine (runtime.Goexit, as
// t.FailNow does).
var errKeepFailed = errors.New("keep function did not return")

// validOwnedName reports whether name is one path component that the
// collector may remove for an embedder. go-microvm's own names are not:
// the commit removes those in its crash-safe order, the state file last.
func validOwnedName(name string) bool {
	switch name {
	case "", ".", "..", rootfsWorkName, state.FileName, state.LockFileName, consoleLogName, vmLogName:
		return false
	}
	if ok, _ := filepath.Match(state.TempPattern, name); ok {
		return false
	}
	return !strings.ContainsRune(name, '/') && !strings.HasPrefix(name, OwnPrefix)
}

// embedderFirst runs, under the data directory's lease and state lock and
// once its path is verified, what the embedder asked for before a
// reclaim: its veto, then the removal of its owned entries. It returns
// the candidate as kept when the reclaim must not go on.
func (c *collector) embedderFirst(d *os.File, rel string, now Candidate) *Candidate {
	if k := c.veto(now); k != nil {
		return k
	}
	if len(c.o.owned) == 0 {
		return nil
	}
	freed, left := c.removeOwned(d, now.Path, "", now.Path)
	c.addFreed(freed)
	if left != "" {
		k := now
		k.Detail += "; owned entry left for the next run: " + left
		return &k
	}
	parents := c.ownedParents(d, rel)
	defer func() {
		for _, p := range parents {
			_ = p.dir.Close()
		}
	}()
	for _, p := range parents {
		freed, left := c.removeOwned(p.dir, p.path, p.branch, now.Path)
		c.addFreed(freed)
		if left != "" {
			k := now
			k.Detail += "; owned entry left for the next run: " + left
			return &k
		}
	}
	return nil
}

// veto asks the embedder's WithKeep about the candidate now, if it set
// one, and returns it relabelled when it is to be kept.
func (c *collector) veto(now Candidate) *Candidate {
	if c.o.keep == nil {
		return nil
	}
	keep, err := c.askKeep(now.Path)
	if err != nil {
		c.addErr("ask keep", now.Path, err)
		k := relabel(now, ClassUnknown, ReasonEmbedderKeep, err.Error())
		return &k
	}
	if keep {
		k := relabel(now, ClassLive, ReasonEmbedderKeep, "kept by the embedder")
		return &k
	}
	return nil
}

// reclaimLeftover removes the embedder's leftovers d, at cand.rel in
// parent, once its veto says so. It holds a flock on d from before it
// looks again until d is gone: an embedder that flocks the directory
// while it uses it keeps it, and is never asked.
func (c *collector) reclaimLeftover(cand scanned, parent, d *os.File) outcome {
	kept, path := cand.Candidate, cand.Path
	restore, out, ok := leaseWritable(d, path, kept, "directory is flocked")
	if !ok {
		return out
	}
	defer restore()
	if err := c.verifyPath(cand.rel, d); err != nil {
		return keptAs(kept, err)
	}
	if !c.leftover(d) {
		kept.Detail += " (changed during the sweep)"
		return keptAs(kept, nil)
	}
	if k := c.veto(kept); k != nil {
		return keptAs(*k, nil)
	}
	freed, left := c.removeOwned(d, path, "", path)
	if left != "" {
		c.addFreed(freed)
		kept.Detail += "; owned entry left for the next run: " + left
		return keptAs(kept, nil)
	}
	c.removeDataDir(parent, d, cand.rel, path)
	return reclaimedAs(Orphan{Path: path, Reason: kept.Reason, Bytes: freed})
}

// leftover reports whether the directory d still holds only the
// embedder's entries: at least one, and nothing else but an idle
// collector lock.
func (c *collector) leftover(d *os.File) bool {
	names, err := dirNames(d)
	if err != nil {
		return false
	}
	owned := 0
	for _, n := range names {
		switch {
		case n == LockName():
		case c.o.ownedAt(int(d.Fd()), n):
			owned++
		default:
			return false
		}
	}
	return owned > 0
}

// addFreed counts bytes freed outside an orphan's own.
func (c *collector) addFreed(n int64) {
	c.mu.Lock()
	c.rep.BytesFreed += n
	c.mu.Unlock()
}

// askKeep calls the embedder's veto and turns a panic or a
// runtime.Goexit in it into an error, with keep true. The veto runs on a
// goroutine of its own: a Goexit cannot be stopped once begun, and on the
// reclaiming goroutine it would end the sweep without a word.
func (c *collector) askKeep(dataDir string) (keep bool, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		returned := false
		defer func() {
			switch v := recover(); {
			case v != nil:
				keep, err = true, fmt.Errorf("%w: panic: %v", errKeepFailed, v)
			case !returned:
				keep, err = true, fmt.Errorf("%w: it called runtime.Goexit", errKeepFailed)
			}
		}()
		keep = c.o.keep(dataDir)
		returned = true
	}()
	<-done
	return keep, err
}

// ownedAt reports whether name in dirfd is one of the embedder's entries:
// an owned name that holds no state file at any depth. A directory that
// holds one holds a data directory, judged as such, whatever its name.
func (o *options) ownedAt(dirfd int, name string) bool {
	return slices.Contains(o.owned, name) && !holdsDataDir(dirfd, name)
}

// holdsDataDir reports whether the directory name in dirfd, or one below
// it that a look through its directories (never through a symbolic link)
// reaches, holds a state file. One inside a rootfs-work (a guest image's
// file) does not count: it goes with the clone, unless its VM is live.
func holdsDataDir(dirfd int, name string) bool {
	var st unix.Stat_t
	if sysat.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || !sysat.IsDir(&st) {
		return false
	}
	if holdsState(dirfd, name) {
		return true
	}
	fd, err := sysat.FcntlInt(uintptr(dirfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return true
	}
	parent := os.NewFile(uintptr(fd), name)
	// A directory: its close has nothing to report.
	defer func() { _ = parent.Close() }()
	found := func(_ int, path string) string {
		if slices.Contains(strings.Split(filepath.Dir(path), "/"), rootfsWorkName) {
			return ""
		}
		return "data directory"
	}
	res, _ := fstree.Options{InUseMarker: state.FileName, InUse: found}.InUseAt(context.Background(), parent, name, name)
	return len(res.InUse) > 0
}

// holdsState reports whether the directory name in dirfd holds a state
// file. A name swapped for a symbolic link since it was listed can only
// make the answer yes, which keeps.
func holdsState(dirfd int, name string) bool {
	var st unix.Stat_t
	return sysat.Fstatat(dirfd, name+"/"+state.FileName, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// removeOwned removes the owned entries of dir (at path), fd-relative, but
// never branch, the entry leading to the data directory, and returns the
// path of the first one it could not remove, "" when all are gone, with
// the bytes freed. Failures are reported by removeTree, under owner, the
// data directory.
func (c *collector) removeOwned(dir *os.File, path, branch, owner string) (freed int64, left string) {
	for _, name := range c.o.owned {
		if name == branch || !c.o.ownedAt(int(dir.Fd()), name) {
			continue
		}
		var st unix.Stat_t
		if err := sysat.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
			continue
		}
		display := filepath.Join(path, name)
		n, gone := c.removeTree(dir, name, display, owner)
		freed += n
		if !gone {
			return freed, display
		}
	}
	return freed, ""
}

// ownedParent is an open parent of a data directory whose owned entries
// go with it.
type ownedParent struct {
	dir    *os.File
	path   string
	branch string // the entry leading down to the data directory
}

// ownedParents opens the parents of the data directory d at rel, strictly
// below root and from the nearest up, as long as each holds nothing but
// the branch leading to d, owned names and an idle collector lock file,
// and the branch is the directory below it (d for the first). The caller
// closes them.
func (c *collector) ownedParents(d *os.File, rel string) []ownedParent {
	var out []ownedParent
	child, childRel := d, rel
	for up := filepath.Dir(childRel); up != "."; up = filepath.Dir(up) {
		p, err := fstree.OpenDir(c.root, up)
		if err != nil {
			break
		}
		if !c.onlyBranch(p, filepath.Base(childRel), child) {
			_ = p.Close()
			break
		}
		out = append(out, ownedParent{dir: p, path: filepath.Join(c.abs, up), branch: filepath.Base(childRel)})
		child, childRel = p, up
	}
	return out
}

// onlyBranch reports whether p holds only the directory child under name,
// owned entries and an idle collector lock file.
func (c *collector) onlyBranch(p *os.File, name string, child *os.File) bool {
	names, err := dirNames(p)
	if err != nil {
		return false
	}
	for _, n := range names {
		if n != name && n != LockName() && !c.o.ownedAt(int(p.Fd()), n) {
			return false
		}
	}
	// The entry must still be the directory the caller holds open.
	named, err := openDirAt(p, name, name)
	if err != nil {
		return false
	}
	defer named.Close()
	same, err := sameFile(named, child)
	return err == nil && same
}
