// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"io"
	"math"
	"unicode/utf8"

	"github.com/stacklok/go-microvm/gc"
)

// rootJSON is one root of a run.
type rootJSON struct {
	Path      string `json:"path"`
	PathBytes []byte `json:"path_bytes,omitempty"`
	// Busy (collect): another collector held the root lock.
	Busy bool `json:"busy,omitempty"`
	// LockError (collect --dry-run): why this user could not take the
	// root lock, so a real collect would fail.
	LockError string `json:"lock_error,omitempty"`
}

// listJSON is the stable `list --json` document. The command never
// builds it: docSink writes it piece by piece, Dirs in scan order (not
// sorted); tests decode it.
type listJSON struct {
	// Root is the first root (or the first default looked at when none
	// exists); Roots lists all of them.
	Root  string      `json:"root"`
	Roots []rootJSON  `json:"roots"`
	Dirs  []dirJSON   `json:"dirs"`
	Trash []trashJSON `json:"trash"`
	// Counts is the number of Dirs of each class.
	Counts      map[gc.Class]int `json:"counts"`
	Interrupted bool             `json:"interrupted"`
}

// dirJSON is a data directory in `list --json`: a candidate with its size.
type dirJSON struct {
	candidateJSON
	// Bytes is null unless sizes were measured.
	Bytes *int64 `json:"bytes"`
}

// trashJSON is a trash directory holding the rest of a cut-short
// collection; the next collect empties it.
type trashJSON struct {
	Path      string `json:"path"`
	PathBytes []byte `json:"path_bytes,omitempty"`
	Entries   int    `json:"entries"`
	// Bytes is null unless sizes were measured.
	Bytes *int64 `json:"bytes"`
}

// collectJSON is the stable `collect --json` document.
type collectJSON struct {
	Root        string          `json:"root"`
	Roots       []rootJSON      `json:"roots"`
	Busy        bool            `json:"busy"`
	DryRun      bool            `json:"dry_run"`
	Interrupted bool            `json:"interrupted"`
	Reclaimed   []reclaimedJSON `json:"reclaimed"`
	Kept        []candidateJSON `json:"kept"`
	Errors      []errorJSON     `json:"errors"`
	BytesFreed  int64           `json:"bytes_freed"`
	// WouldFreeBytes (dry run) is what a collect would free now: the
	// orphans and the pending trash. Null otherwise.
	WouldFreeBytes *int64 `json:"would_free_bytes"`
}

type reclaimedJSON struct {
	Path      string `json:"path"`
	PathBytes []byte `json:"path_bytes,omitempty"`
	Reason    string `json:"reason"`
	PID       int    `json:"pid"`
	Bytes     int64  `json:"bytes"`
}

// candidateJSON is a data directory with its verdict: one collect kept,
// and the fields of one list shows.
type candidateJSON struct {
	Path       string   `json:"path"`
	PathBytes  []byte   `json:"path_bytes,omitempty"`
	Class      gc.Class `json:"class"`
	Reason     string   `json:"reason"`
	Detail     string   `json:"detail"`
	PID        int      `json:"pid"`
	AgeSeconds float64  `json:"age_seconds"`
}

// newCandidateJSON is c as collect --json and list --json show it.
func newCandidateJSON(c gc.Candidate) candidateJSON {
	return candidateJSON{
		Path:       c.Path,
		PathBytes:  pathBytes(c.Path),
		Class:      c.Class,
		Reason:     string(c.Reason),
		Detail:     candidateDetail(c),
		PID:        c.PID,
		AgeSeconds: math.Round(c.Age.Seconds()),
	}
}

type errorJSON struct {
	Path      string `json:"path"`
	PathBytes []byte `json:"path_bytes,omitempty"`
	Error     string `json:"error"`
}

// pathBytes is the path_bytes of the JSON forms: the bytes of a path that
// is not valid UTF-8, which a JSON string cannot hold (its invalid bytes
// become U+FFFD in "path"); nil for any other path, which "path" holds
// exactly. encoding/json writes them in standard base64.
func pathBytes(p string) []byte {
	if utf8.ValidString(p) {
		return nil
	}
	return []byte(p)
}

// writeJSON writes v indented; a failed write is caught by the outWriter.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func firstRoot(rs roots) string {
	if len(rs.dirs) > 0 {
		return rs.dirs[0]
	}
	if len(rs.missing) > 0 {
		return rs.missing[0]
	}
	return ""
}

// newCollectJSON builds the collect document from the results of each
// root; results is nil when no root exists.
func newCollectJSON(rs roots, results []rootResult, dryRun, interrupted bool) collectJSON {
	doc := collectJSON{
		Root:        firstRoot(rs),
		Roots:       []rootJSON{},
		DryRun:      dryRun,
		Interrupted: interrupted,
		Reclaimed:   []reclaimedJSON{},
		Kept:        []candidateJSON{},
		Errors:      []errorJSON{},
	}
	var wouldFree int64
	for _, r := range results {
		rj := rootJSON{Path: r.root, PathBytes: pathBytes(r.root), Busy: r.busy}
		if r.lockErr != nil {
			rj.LockError = r.lockErr.Error()
		}
		doc.Roots = append(doc.Roots, rj)
		doc.Busy = doc.Busy || r.busy
		if r.fatal != nil {
			doc.Errors = append(doc.Errors, errorJSON{Path: r.root, PathBytes: pathBytes(r.root), Error: r.fatal.Error()})
		}
		rep := r.report()
		for _, o := range rep.Reclaimed {
			doc.Reclaimed = append(doc.Reclaimed, reclaimedJSON{Path: o.Path, PathBytes: pathBytes(o.Path), Reason: string(o.Reason), PID: o.PID, Bytes: o.Bytes})
			wouldFree += o.Bytes
		}
		for _, c := range rep.Kept {
			doc.Kept = append(doc.Kept, newCandidateJSON(c))
		}
		for _, e := range rep.Errors {
			doc.Errors = append(doc.Errors, errorJSON{Path: e.Path, PathBytes: pathBytes(e.Path), Error: opError(e)})
		}
		doc.BytesFreed += rep.BytesFreed
		for _, t := range r.trash {
			wouldFree += max(t.Bytes, 0)
		}
	}
	if dryRun {
		doc.WouldFreeBytes = &wouldFree
	}
	return doc
}
