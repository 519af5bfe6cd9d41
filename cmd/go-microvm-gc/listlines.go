// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"encoding/json"
	"math"

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

// streamList is `list --json-lines`: each data directory is written as a
// line as soon as gc.ScanSeq decides it, and only counts are kept, so the
// memory is the same for ten directories or a million.
func (a *app) streamList(lf *listFlags, rs roots, opts []gc.Option) error {
	w := bufio.NewWriter(a.stdout)
	enc := json.NewEncoder(w)
	sum := summaryLine{Kind: lineSummary, Roots: []rootJSON{}, Missing: rs.missing, Counts: map[gc.Class]int{}}
	if sum.Missing == nil {
		sum.Missing = []string{}
	}
	failed := false
	for _, root := range rs.dirs {
		if a.ctx.Err() != nil {
			break
		}
		sum.Roots = append(sum.Roots, rootJSON{Path: root})
		if t, ok := trashIn(a.ctx, root, lf.sizes); ok {
			_ = enc.Encode(newTrashLine(root, t))
		}
		for c, err := range gc.ScanSeq(a.ctx, root, opts...) {
			if err != nil {
				if a.ctx.Err() == nil {
					a.errorf("list", "%s", quote(err.Error()))
					failed = true
				}
				continue
			}
			d := dirLine{Kind: lineDir, Root: root, dirJSON: dirJSON{
				Path:       c.Path,
				Class:      c.Class,
				Reason:     string(c.Reason),
				Detail:     candidateDetail(c),
				PID:        c.PID,
				AgeSeconds: math.Round(c.Age.Seconds()),
			}}
			if lf.sizes && c.Bytes >= 0 {
				b := c.Bytes
				d.Bytes = &b
			}
			_ = enc.Encode(&d)
			sum.Counts[c.Class]++
			if c.Path != root {
				if t, ok := trashIn(a.ctx, c.Path, lf.sizes); ok {
					_ = enc.Encode(newTrashLine(root, t))
				}
			}
		}
	}
	code, sig := interrupted(a.ctx)
	sum.Interrupted = sig
	_ = enc.Encode(&sum)
	_ = w.Flush()
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

func newTrashLine(root string, t pendingTrash) *trashLine {
	l := &trashLine{Kind: lineTrash, Root: root, trashJSON: trashJSON{Path: t.Path, Entries: t.Entries}}
	if t.Bytes >= 0 {
		b := t.Bytes
		l.Bytes = &b
	}
	return l
}
