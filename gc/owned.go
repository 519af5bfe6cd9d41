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

// errKeepFailed is wrapped by the error of a WithKeep function that
// panicked or called runtime.Goexit (as t.FailNow does).
var errKeepFailed = errors.New("keep function did not return")

// validOwnedName reports whether name is one path component the collector
// may remove for an embedder: not one of go-microvm's own names.
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

// embedderFirst asks the embedder's veto, then removes its owned entries
// in the data directory d at rel and in each parent below root holding
// nothing else but the branch down to d. It returns the candidate as kept
// when the reclaim must not go on.
func (c *collector) embedderFirst(d *os.File, rel string, now Candidate) *Candidate {
	if k := c.veto(now); k != nil {
		return k
	}
	dir, branch := d, ""
	for len(c.o.owned) > 0 {
		freed, k := c.removeOwned(dir, filepath.Join(c.abs, rel), branch, now)
		if k != nil {
			return k
		}
		c.freed.Add(freed)
		up := filepath.Dir(rel)
		if up == "." {
			break
		}
		p, err := fstree.OpenDir(c.root, up)
		if err != nil {
			break
		}
		defer p.Close() // one per level below root
		_, only := c.o.ownedOnly(p, filepath.Base(rel))
		err = verifyPath(p, filepath.Base(rel), dir)
		dir, rel, branch = p, up, filepath.Base(rel)
		if !only || err != nil {
			break
		}
	}
	return nil
}

// veto asks the embedder's WithKeep, if set, on a goroutine of its own,
// and returns the candidate relabelled when it is to be kept; a panic or a
// runtime.Goexit in it keeps it too, with an error.
func (c *collector) veto(now Candidate) *Candidate {
	if c.o.keep == nil {
		return nil
	}
	var keep bool
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		returned := false
		defer func() {
			switch v := recover(); {
			case v != nil:
				err = fmt.Errorf("%w: panic: %v", errKeepFailed, v)
			case !returned:
				err = fmt.Errorf("%w: it called runtime.Goexit", errKeepFailed)
			}
		}()
		keep = c.o.keep(now.Path)
		returned = true
	}()
	<-done
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

// reclaimLeftover removes the owned entries of the embedder's leftovers d,
// under a flock on d taken before it looks again, once the veto says so.
func (c *collector) reclaimLeftover(cand scanned, d *os.File) outcome {
	kept, path := cand.Candidate, cand.Path
	if err := verifyPath(c.root, cand.rel, d); err != nil {
		return outcome{kept: kept, err: err}
	}
	if n, ok := c.o.ownedOnly(d, ""); !ok || n == 0 {
		kept.Detail += " (changed during the sweep)"
		return outcome{kept: kept}
	}
	if k := c.veto(kept); k != nil {
		return outcome{kept: *k}
	}
	freed, k := c.removeOwned(d, path, "", kept)
	if k != nil {
		return outcome{kept: *k}
	}
	return outcome{orphan: &Orphan{Path: path, Reason: kept.Reason, Bytes: freed}}
}

// ownedOnly reports whether dir holds nothing but owned entries, an idle
// collector lock and the entry branch, and how many owned entries.
func (o *options) ownedOnly(dir *os.File, branch string) (owned int, ok bool) {
	names, err := dirNames(dir)
	if err != nil {
		return 0, false
	}
	for _, n := range names {
		switch {
		case n == branch, n == LockName():
		case o.ownedAt(dir, n):
			owned++
		default:
			return 0, false
		}
	}
	return owned, true
}

// ownedAt reports whether name in dir is one of the embedder's entries:
// an owned name holding no state file at any depth (never through a
// symlink); one inside a rootfs-work (a guest image's file) does not count.
func (o *options) ownedAt(dir *os.File, name string) bool {
	if !slices.Contains(o.owned, name) {
		return false
	}
	var st unix.Stat_t
	if sysat.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || !sysat.IsDir(&st) {
		return true
	}
	// A name swapped for a symlink since can only make this no: kept.
	if sysat.Fstatat(int(dir.Fd()), name+"/"+state.FileName, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		return false
	}
	found := func(_ int, path string) string {
		if slices.Contains(strings.Split(filepath.Dir(path), "/"), rootfsWorkName) {
			return ""
		}
		return "data directory"
	}
	res, _ := fstree.Options{InUseMarker: state.FileName, InUse: found}.InUseAt(context.Background(), dir, name, name)
	return len(res.InUse) == 0
}

// removeOwned removes the owned entries of dir (at path) but branch and
// returns the bytes freed, or, when one is left, now kept (what went is
// counted as freed).
func (c *collector) removeOwned(dir *os.File, path, branch string, now Candidate) (int64, *Candidate) {
	var freed int64
	for _, name := range c.o.owned {
		if name == branch || !c.o.ownedAt(dir, name) {
			continue
		}
		var st unix.Stat_t
		if err := sysat.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
			continue
		}
		display := filepath.Join(path, name)
		n, gone := c.removeTree(dir, name, display, now.Path)
		freed += n
		if !gone {
			c.freed.Add(freed)
			now.Detail += "; owned entry left for the next run: " + display
			return 0, &now
		}
	}
	return freed, nil
}
