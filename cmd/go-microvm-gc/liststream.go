// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"

	"github.com/stacklok/go-microvm/gc"
)

// Kinds of the lines of `list --json-lines`.
const (
	lineDir     = "dir"
	lineTrash   = "trash"
	lineSummary = "summary"
)

// dirLine is a data directory in `list --json-lines`: the fields of a
// `list --json` directory, with its kind and root.
type dirLine struct {
	Kind string `json:"kind"`
	Root string `json:"root"`
	dirJSON
}

// trashLine is a non-empty collector trash in `list --json-lines`.
type trashLine struct {
	Kind string `json:"kind"`
	Root string `json:"root"`
	trashJSON
}

// summaryLine is the last line of `list --json-lines`: the roots, the
// number of data directories of each class, and whether an interrupt cut
// the listing short.
type summaryLine struct {
	Kind        string           `json:"kind"`
	Roots       []rootJSON       `json:"roots"`
	Missing     []string         `json:"missing"`
	Counts      map[gc.Class]int `json:"counts"`
	Interrupted bool             `json:"interrupted"`
}

// listSink is where a streamed listing goes: `--json-lines` or `--json`.
// dir and trash are called as the listing decides them; end once, last.
type listSink interface {
	dir(root string, d *dirJSON)
	trash(root string, t *trashJSON)
	end(sum *summaryLine)
}

// streamList is `list --json` and `list --json-lines`: each data directory
// is handed to sink as soon as gc.ScanSeq decides it, and only counts are
// kept, so the memory is the same for ten directories or a million.
func (a *app) streamList(lf *listFlags, rs roots, opts []gc.Option, sink listSink) error {
	sum := summaryLine{Kind: lineSummary, Roots: []rootJSON{}, Missing: rs.missing, Counts: map[gc.Class]int{}}
	if sum.Missing == nil {
		sum.Missing = []string{}
	}
	failed := false
	for _, root := range rs.dirs {
		if a.ctx.Err() != nil {
			break
		}
		sum.Roots = append(sum.Roots, rootJSON{Path: root, PathBytes: pathBytes(root)})
		if t, ok := trashIn(a.ctx, root, lf.sizes); ok {
			sink.trash(root, newTrashJSON(t))
		}
		for c, err := range gc.ScanSeq(a.ctx, root, opts...) {
			if err != nil {
				if a.ctx.Err() == nil {
					a.errorf("list", "%s", quote(err.Error()))
					failed = true
				}
				continue
			}
			d := newDirJSON(c, lf.sizes)
			sink.dir(root, &d)
			sum.Counts[c.Class]++
		}
	}
	code, sig := interrupted(a.ctx)
	sum.Interrupted = sig
	sink.end(&sum)
	if sig {
		a.errorf("list", "interrupted")
	} else if failed {
		code = exitError
	}
	if code != exitOK {
		return &exitCodeError{code: code}
	}
	return nil
}

func newDirJSON(c gc.Candidate, sizes bool) dirJSON {
	d := dirJSON{candidateJSON: newCandidateJSON(c)}
	if sizes && c.Bytes >= 0 {
		b := c.Bytes
		d.Bytes = &b
	}
	return d
}

func newTrashJSON(t pendingTrash) *trashJSON {
	tj := &trashJSON{Path: t.Path, PathBytes: pathBytes(t.Path), Entries: t.Entries}
	if t.Bytes >= 0 {
		b := t.Bytes
		tj.Bytes = &b
	}
	return tj
}

// linesSink writes `list --json-lines`: one object a line.
type linesSink struct {
	w   *bufio.Writer
	enc *json.Encoder
}

func newLinesSink(w io.Writer) *linesSink {
	bw := bufio.NewWriter(w)
	return &linesSink{w: bw, enc: json.NewEncoder(bw)}
}

// The encoder's errors are write errors, which the outWriter under w keeps.

func (s *linesSink) dir(root string, d *dirJSON) {
	_ = s.enc.Encode(&dirLine{Kind: lineDir, Root: root, dirJSON: *d})
}

func (s *linesSink) trash(root string, t *trashJSON) {
	_ = s.enc.Encode(&trashLine{Kind: lineTrash, Root: root, trashJSON: *t})
}

func (s *linesSink) end(sum *summaryLine) {
	_ = s.enc.Encode(sum)
	_ = s.w.Flush()
}

// docSink writes the `list --json` document (listJSON) as it goes: the
// "dirs" array element by element, in the order the scan decides them,
// then the roots, the trash (a few entries at most: one per root or per
// data directory on another filesystem), the counts and the interrupt
// flag. It is indented as writeJSON indents, so the document reads the
// same as one encoded whole.
type docSink struct {
	w    *bufio.Writer
	buf  bytes.Buffer
	enc  *json.Encoder
	dirs int
	// pending is the trash found: held, as it goes after the dirs.
	pending []*trashJSON
}

// newDocSink starts the document on w with its first root.
func newDocSink(w io.Writer, root string) *docSink {
	s := &docSink{w: bufio.NewWriter(w)}
	s.enc = json.NewEncoder(&s.buf)
	s.enc.SetIndent("    ", "  ")
	_, _ = s.w.WriteString("{\n  \"root\": ")
	s.value(root)
	_, _ = s.w.WriteString(",\n  \"dirs\": [")
	return s
}

// value writes v as indented JSON at the depth of a dirs element.
func (s *docSink) value(v any) {
	s.buf.Reset()
	// Values of this file's own types: they always encode.
	_ = s.enc.Encode(v)
	_, _ = s.w.Write(bytes.TrimSuffix(s.buf.Bytes(), []byte("\n")))
}

func (s *docSink) dir(_ string, d *dirJSON) {
	if s.dirs > 0 {
		_ = s.w.WriteByte(',')
	}
	_, _ = s.w.WriteString("\n    ")
	s.value(d)
	s.dirs++
}

func (s *docSink) trash(_ string, t *trashJSON) { s.pending = append(s.pending, t) }

func (s *docSink) end(sum *summaryLine) {
	if s.dirs > 0 {
		_, _ = s.w.WriteString("\n  ")
	}
	_ = s.w.WriteByte(']')
	s.field("roots", sum.Roots)
	trash := s.pending
	if trash == nil {
		trash = []*trashJSON{}
	}
	s.field("trash", trash)
	s.field("counts", sum.Counts)
	s.field("interrupted", sum.Interrupted)
	_, _ = s.w.WriteString("\n}\n")
	_ = s.w.Flush()
}

// field writes one more top-level field.
func (s *docSink) field(name string, v any) {
	_, _ = s.w.WriteString(",\n  \"" + name + "\": ")
	s.buf.Reset()
	enc := json.NewEncoder(&s.buf)
	enc.SetIndent("  ", "  ")
	_ = enc.Encode(v)
	_, _ = s.w.Write(bytes.TrimSuffix(s.buf.Bytes(), []byte("\n")))
}
