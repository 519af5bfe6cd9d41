// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stacklok/go-microvm/gc"
)

// progress shows, on a terminal, how far a long collection has got. It
// learns what happens from the collector's log records (one per directory
// classified and per directory reclaimed), so it needs no hook in package
// gc, and it is only set up when stderr is a terminal: when off it costs
// nothing.
type progress struct {
	w        io.Writer
	classed  atomic.Int64 // data directories classified
	orphans  atomic.Int64 // of which orphans
	done     atomic.Int64 // orphans reclaimed
	freed    atomic.Int64 // bytes freed by those
	stopOnce sync.Once
	stopc    chan struct{}
	wg       sync.WaitGroup
	drawn    bool
}

// progressTick is how often the line is redrawn.
const progressTick = 200 * time.Millisecond

// startProgress starts drawing on w once after has passed.
func startProgress(w io.Writer, after time.Duration) *progress {
	p := &progress{w: w, stopc: make(chan struct{})}
	p.wg.Add(1)
	go p.loop(after)
	return p
}

func (p *progress) loop(after time.Duration) {
	defer p.wg.Done()
	if after > 0 {
		wait := time.NewTimer(after)
		defer wait.Stop()
		select {
		case <-wait.C:
		case <-p.stopc:
			return
		}
	}
	t := time.NewTicker(progressTick)
	defer t.Stop()
	for {
		p.draw()
		select {
		case <-t.C:
		case <-p.stopc:
			return
		}
	}
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

// stop stops drawing and erases the line. Safe on a nil progress and to
// call twice.
func (p *progress) stop() {
	if p == nil {
		return
	}
	p.stopOnce.Do(func() {
		close(p.stopc)
		p.wg.Wait()
		if p.drawn {
			eprintf(p.w, "\r\x1b[K")
		}
	})
}

// handler wraps the command's log handler: it counts the collector's
// records and passes on those inner would log.
func (p *progress) handler(inner slog.Handler) slog.Handler {
	return &progressHandler{inner: inner, p: p}
}

type progressHandler struct {
	inner slog.Handler
	p     *progress
}

func (h *progressHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *progressHandler) Handle(ctx context.Context, r slog.Record) error {
	switch r.Message {
	case "gc: classified":
		h.p.classed.Add(1)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "class" {
				if c, ok := a.Value.Any().(gc.Class); ok && c == gc.ClassOrphan {
					h.p.orphans.Add(1)
				}
				return false
			}
			return true
		})
	case "gc: reclaimed":
		h.p.done.Add(1)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "bytes" && a.Value.Kind() == slog.KindInt64 {
				h.p.freed.Add(a.Value.Int64())
				return false
			}
			return true
		})
	}
	if h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h *progressHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &progressHandler{inner: h.inner.WithAttrs(attrs), p: h.p}
}

func (h *progressHandler) WithGroup(name string) slog.Handler {
	return &progressHandler{inner: h.inner.WithGroup(name), p: h.p}
}
