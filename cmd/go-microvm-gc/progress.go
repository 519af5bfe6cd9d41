// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/stacklok/go-microvm/gc"
)

// progress shows, on a terminal, how far a long collection has got,
// redrawn in place from gc.WithProgress's counts.
type progress struct {
	w       io.Writer
	classed atomic.Int64 // data directories classified
	orphans atomic.Int64 // of which orphans
	done    atomic.Int64 // orphans reclaimed
	freed   atomic.Int64 // bytes freed by those
	stopc   chan struct{}
	exited  chan struct{}
	drawn   bool
}

// progressTick is how often the line is redrawn.
const progressTick = 200 * time.Millisecond

// startProgress starts drawing on w once after has passed.
func startProgress(w io.Writer, after time.Duration) *progress {
	p := &progress{w: w, stopc: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		t := time.NewTimer(after)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
				t.Reset(progressTick)
			case <-p.stopc:
				return
			}
		}
	}()
	return p
}

func (p *progress) draw() {
	var line string
	if n := p.orphans.Load(); n > 0 {
		line = fmt.Sprintf("collect: %d of %d orphans reclaimed, %s freed", p.done.Load(), n, formatBytes(p.freed.Load()))
	} else {
		line = fmt.Sprintf("collect: %d data directories classified", p.classed.Load())
	}
	// Carriage return and erase-line: one line, redrawn in place.
	eprintf(p.w, "\r\x1b[K%s", line)
	p.drawn = true
}

// stop stops drawing and erases the line; a nil progress does nothing.
func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.stopc)
	<-p.exited
	if p.drawn {
		eprintf(p.w, "\r\x1b[K")
	}
}

// observe counts one step of the collection; it is the gc.WithProgress
// hook, called on the collector's goroutines.
func (p *progress) observe(e gc.Progress) {
	switch e.Kind {
	case gc.ProgressClassified:
		p.classed.Add(1)
		if e.Candidate.Class == gc.ClassOrphan {
			p.orphans.Add(1)
		}
	case gc.ProgressReclaimed:
		p.done.Add(1)
		p.freed.Add(e.Orphan.Bytes)
	}
}
