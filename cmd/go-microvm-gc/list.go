// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stacklok/go-microvm/gc"
)

const listLong = `List every data directory under the roots with its class and reason,
and the collector trash a cut-short collection left behind. It changes
nothing.

The table and -q are sorted by path. --json and --json-lines write each
data directory as soon as it is decided, in scan order (not sorted), and
keep only counts, so their memory stays flat at any number of directories.
A path that is not valid UTF-8 also gets "path_bytes", its exact bytes in
base64, since a JSON string cannot hold them.`

// listFlags are the flags of list.
type listFlags struct {
	commonFlags
	sizes     bool
	jsonLines bool
}

func (a *app) newListCmd() *cobra.Command {
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List data directories with their class and reason",
		Long:  listLong,
		Example: `  go-microvm-gc list --sizes
  go-microvm-gc list --stopped --older-than 7d --json`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return a.runList(&lf) },
	}
	lf.register(cmd, "print only the paths of the data directories, one a line")
	cmd.Flags().BoolVar(&lf.sizes, "sizes", false, "measure the allocated bytes of what go-microvm owns in each data directory")
	cmd.Flags().BoolVar(&lf.jsonLines, "json-lines", false, "print JSON Lines, one object per data directory as it is decided\n(in scan order, not sorted; memory stays flat at any number of directories)")
	return cmd
}

// runList is `go-microvm-gc list`.
func (a *app) runList(lf *listFlags) error {
	if err := lf.check(); err != nil {
		return err
	}
	if lf.jsonLines && (lf.json || lf.quiet) {
		return usagef("--json-lines excludes --json and --quiet")
	}
	rs, err := resolveRoots(lf.roots)
	if err != nil {
		return err
	}
	opts := append(lf.gcOptions(), gc.WithLogger(newLogger(a.stderr, lf.verbose)))
	if lf.sizes {
		opts = append(opts, gc.WithSizes())
	}
	var sink listSink = &tableSink{w: a.stdout, lf: lf, dirs: map[string][]*dirJSON{}, trashes: map[string]*trashJSON{}}
	switch {
	case lf.jsonLines:
		sink = newLinesSink(a.stdout)
	case lf.json:
		sink = newDocSink(a.stdout, firstRoot(rs))
	}
	return a.streamList(lf, rs, opts, sink)
}

// errorf prints one error line of subcommand cmd on stderr.
func (a *app) errorf(cmd, format string, args ...any) {
	eprintf(a.stderr, "go-microvm-gc %s: %s\n", cmd, fmt.Sprintf(format, args...))
}

// Kinds of the lines of `list --json-lines`.
const (
	lineDir     = "dir"
	lineTrash   = "trash"
	lineSummary = "summary"
)

// dirLine, trashLine and summaryLine are the lines of `list --json-lines`:
// a `list --json` directory or trash with its root; last, the roots, the
// count of each class and whether an interrupt cut the listing short.
type dirLine struct {
	Kind string `json:"kind"`
	Root string `json:"root"`
	dirJSON
}

type trashLine struct {
	Kind string `json:"kind"`
	Root string `json:"root"`
	trashJSON
}

type summaryLine struct {
	Kind        string           `json:"kind"`
	Roots       []rootJSON       `json:"roots"`
	Missing     []string         `json:"missing"`
	Counts      map[gc.Class]int `json:"counts"`
	Interrupted bool             `json:"interrupted"`
	// failed are the roots that could not be (wholly) walked.
	failed []string
}

// listSink is where a listing goes: `--json-lines`, `--json` or the table.
// dir and trash are called as the listing decides them; end once, last.
type listSink interface {
	dir(root string, d *dirJSON)
	trash(root string, t *trashJSON)
	end(sum *summaryLine)
}

// streamList lists every root into sink: each data directory is handed
// over as soon as gc.ScanSeq decides it, and only counts are kept, so the
// memory of the JSON sinks is the same for ten directories or a million.
func (a *app) streamList(lf *listFlags, rs roots, opts []gc.Option, sink listSink) error {
	sum := summaryLine{Kind: lineSummary, Roots: []rootJSON{}, Missing: append([]string{}, rs.missing...), Counts: map[gc.Class]int{}}
	for _, root := range rs.dirs {
		if a.ctx.Err() != nil {
			break
		}
		sum.Roots = append(sum.Roots, rootJSON{Path: root, PathBytes: pathBytes(root)})
		if t, ok := trashIn(a.ctx, root, lf.sizes); ok {
			sink.trash(root, &trashJSON{Path: t.Path, PathBytes: pathBytes(t.Path), Entries: t.Entries, Bytes: sizePtr(t.Bytes)})
		}
		for c, err := range gc.ScanSeq(a.ctx, root, opts...) {
			if err != nil {
				if a.ctx.Err() == nil {
					a.errorf("list", "%s", quote(err.Error()))
					sum.failed = append(sum.failed, root)
				}
				continue
			}
			d := dirJSON{candidateJSON: newCandidateJSON(c)}
			if lf.sizes {
				d.Bytes = sizePtr(c.Bytes)
			}
			sink.dir(root, &d)
			sum.Counts[c.Class]++
		}
	}
	code, sig := interrupted(a.ctx)
	sum.Interrupted = sig
	sink.end(&sum)
	if sig {
		a.errorf("list", "interrupted")
	} else if len(sum.failed) > 0 {
		code = exitError
	}
	if code != exitOK {
		return &exitCodeError{code: code}
	}
	return nil
}

// sizePtr is a measured size n for JSON: null when not measured (-1).
func sizePtr(n int64) *int64 {
	if n < 0 {
		return nil
	}
	return &n
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
// dirs in scan order, then the roots, the trash (at most one per root, so
// held until then), the counts and the interrupt flag, indented as
// writeJSON indents a whole document.
type docSink struct {
	w       *bufio.Writer
	dirs    int
	pending []*trashJSON
}

// newDocSink starts the document on w with its first root.
func newDocSink(w io.Writer, root string) *docSink {
	s := &docSink{w: bufio.NewWriter(w)}
	s.put("{\n  \"root\": ", root, "  ")
	_, _ = s.w.WriteString(",\n  \"dirs\": [")
	return s
}

// put writes text, then v as JSON indented at the depth prefix. The
// values are this file's own types: they always encode.
func (s *docSink) put(text string, v any, prefix string) {
	b, _ := json.MarshalIndent(v, prefix, "  ")
	_, _ = s.w.WriteString(text)
	_, _ = s.w.Write(b)
}

func (s *docSink) dir(_ string, d *dirJSON) {
	sep := ",\n    "
	if s.dirs == 0 {
		sep = sep[1:]
	}
	s.put(sep, d, "    ")
	s.dirs++
}

func (s *docSink) trash(_ string, t *trashJSON) { s.pending = append(s.pending, t) }

func (s *docSink) end(sum *summaryLine) {
	if s.dirs > 0 {
		_, _ = s.w.WriteString("\n  ")
	}
	if s.pending == nil {
		s.pending = []*trashJSON{}
	}
	s.put("],\n  \"roots\": ", sum.Roots, "  ")
	s.put(",\n  \"trash\": ", s.pending, "  ")
	s.put(",\n  \"counts\": ", sum.Counts, "  ")
	s.put(",\n  \"interrupted\": ", sum.Interrupted, "  ")
	_, _ = s.w.WriteString("\n}\n")
	_ = s.w.Flush()
}
