// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"container/list"
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// errChanged reports that a name no longer refers to the directory seen
// when its parent was listed.
var errChanged = errors.New("directory replaced during the walk")

// node is one directory of the walk. parent, name and st are set before
// the node is shared and change only while no other goroutine can reach
// it (before its first successful open).
type node struct {
	parent *node
	name   string
	st     stat
	// display is the path shown for the top; others derive theirs.
	display string

	// pending counts the node's own listing pass plus its child
	// directories not finished yet; the goroutine that brings it to zero
	// finishes the node.
	pending atomic.Int64
	// keep is set when something below must stay (a mount point or an
	// error), so the node is not removed and no ENOTEMPTY is reported.
	keep atomic.Bool
	// requeues is touched only by the goroutine finishing the node.
	requeues int

	// Guarded by fdCache.mu.
	fd   int // -1 when closed
	refs int
	idle *list.Element
}

// path is the display path of n, for errors and Mounts only.
func (n *node) path() string {
	var names []string
	for ; n.parent.parent != nil; n = n.parent {
		names = append(names, n.name)
	}
	p := n.display
	for i := len(names) - 1; i >= 0; i-- {
		p += "/" + names[i]
	}
	return p
}

// fdCache keeps directory descriptors of a walk: those in use (refs > 0)
// and up to limit idle ones, least recently used closed first. Every
// descriptor it opens is checked to be the directory recorded in the node,
// so a reopen can never land on a swapped-in directory or a mount.
type fdCache struct {
	mu    sync.Mutex
	m     mounter
	limit int
	open  int
	peak  int
	idle  list.List // of *node, most recently released at the front
}

func (c *fdCache) ref(n *node) {
	if n.refs == 0 && n.idle != nil {
		c.idle.Remove(n.idle)
		n.idle = nil
	}
	n.refs++
}

// acquire returns an open descriptor of n, opening n and any closed
// ancestor from the nearest open one. On failure it returns the node that
// could not be opened. The caller releases n.
func (c *fdCache) acquire(n *node) (int, *node, error) {
	var buf [4]*node
	chain := buf[:0]
	c.mu.Lock()
	a := n
	for a.fd < 0 {
		chain = append(chain, a)
		a = a.parent
	}
	c.ref(a)
	fd := a.fd
	c.mu.Unlock()
	for i := len(chain) - 1; i >= 0; i-- {
		child := chain[i]
		cfd, err := c.openAt(fd, child.name)
		c.release(a)
		if err == nil {
			err = c.checkDir(cfd, child.st.id)
		}
		if err != nil {
			return -1, child, err
		}
		fd = c.adopt(child, cfd)
		a = child
	}
	return fd, nil, nil
}

// acquireParent returns an open descriptor of n's parent. When the parent
// was closed but n is open, it is reached through n's "..", which costs one
// openat however deep the tree, instead of a chain from the nearest open
// ancestor.
func (c *fdCache) acquireParent(n *node) (int, error) {
	p := n.parent
	c.mu.Lock()
	if p.fd >= 0 {
		c.ref(p)
		fd := p.fd
		c.mu.Unlock()
		return fd, nil
	}
	if n.fd >= 0 {
		c.ref(n)
		nfd := n.fd
		c.mu.Unlock()
		pfd, err := c.openAt(nfd, "..")
		c.release(n)
		if err == nil {
			if c.checkDir(pfd, p.st.id) == nil {
				return c.adopt(p, pfd), nil
			}
		}
	} else {
		c.mu.Unlock()
	}
	fd, _, err := c.acquire(p)
	return fd, err
}

// openAt opens the directory name below fd. When the process is out of
// descriptors (a low RLIMIT_NOFILE), it closes the cache's idle ones, keeps
// none idle from then on, and tries again, waiting a little for the other
// workers to release theirs: such a walk goes slower instead of failing,
// since what it leaves would only meet the same limit next time.
func (c *fdCache) openAt(fd int, name string) (int, error) {
	for attempt := 0; ; attempt++ {
		nfd, err := sysat.OpenatNow(fd, name, sysat.DirFlags, 0)
		if err == unix.EMFILE || err == unix.ENFILE {
			c.mu.Lock()
			c.limit = 0
			c.evict()
			c.mu.Unlock()
		}
		if !sysat.WaitForFiles(err, attempt) {
			return nfd, err
		}
	}
}

// checkDir closes fd and fails unless it is the directory want.
func (c *fdCache) checkDir(fd int, want fileID) error {
	st, err := c.m.fstatFD(fd)
	if err == nil && !sameDir(want, st.id) {
		err = errChanged
	}
	if err != nil {
		closeFD(fd)
	}
	return err
}

// adopt records fd as n's descriptor (or closes it when another goroutine
// opened n meanwhile) and returns n's descriptor, referenced.
func (c *fdCache) adopt(n *node, fd int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.fd >= 0 {
		closeFD(fd)
	} else {
		n.fd = fd
		c.open++
		c.peak = max(c.peak, c.open)
	}
	c.ref(n)
	c.evict()
	return n.fd
}

func (c *fdCache) release(n *node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n.refs--
	if n.refs == 0 {
		n.idle = c.idle.PushFront(n)
		c.evict()
	}
}

// forget closes n's descriptor, which nobody uses any more.
func (c *fdCache) forget(n *node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n.fd >= 0 && n.refs == 0 {
		c.idle.Remove(n.idle)
		n.idle = nil
		c.closeNode(n)
	}
}

// evict closes idle descriptors beyond the limit, oldest first.
func (c *fdCache) evict() {
	for c.open > c.limit && c.idle.Len() > 0 {
		n := c.idle.Remove(c.idle.Back()).(*node)
		n.idle = nil
		c.closeNode(n)
	}
}

func (c *fdCache) closeNode(n *node) {
	closeFD(n.fd)
	n.fd = -1
	c.open--
}

// closeAll closes every idle descriptor at the end of a walk.
func (c *fdCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.idle.Len() > 0 {
		n := c.idle.Remove(c.idle.Back()).(*node)
		n.idle = nil
		c.closeNode(n)
	}
}
