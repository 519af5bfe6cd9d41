// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/stacklok/go-microvm/gc"
)

// classOrder is the order classes are counted in summaries: what is
// reclaimable first, then what is kept and why.
var classOrder = []gc.Class{
	gc.ClassOrphan, gc.ClassLive, gc.ClassBusy, gc.ClassStopped, gc.ClassUnknown, gc.ClassUnreadable,
}

// listJSON is the stable `list --json` document.
type listJSON struct {
	Root string    `json:"root"`
	Dirs []dirJSON `json:"dirs"`
}

type dirJSON struct {
	Path       string   `json:"path"`
	Class      gc.Class `json:"class"`
	Reason     string   `json:"reason"`
	PID        int      `json:"pid"`
	AgeSeconds float64  `json:"age_seconds"`
	// Bytes is null unless sizes were measured.
	Bytes *int64 `json:"bytes"`
}

// collectJSON is the stable `collect --json` document.
type collectJSON struct {
	Root       string          `json:"root"`
	Busy       bool            `json:"busy"`
	DryRun     bool            `json:"dry_run"`
	Reclaimed  []reclaimedJSON `json:"reclaimed"`
	Kept       []keptJSON      `json:"kept"`
	Errors     []errorJSON     `json:"errors"`
	BytesFreed int64           `json:"bytes_freed"`
}

type reclaimedJSON struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	Bytes  int64  `json:"bytes"`
}

type keptJSON struct {
	Path   string   `json:"path"`
	Class  gc.Class `json:"class"`
	Reason string   `json:"reason"`
}

type errorJSON struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// newListJSON builds the list document; lists are [] rather than null.
func newListJSON(root string, cands []gc.Candidate, sizes bool) listJSON {
	doc := listJSON{Root: root, Dirs: make([]dirJSON, 0, len(cands))}
	for _, c := range cands {
		d := dirJSON{
			Path:       c.Path,
			Class:      c.Class,
			Reason:     string(c.Reason),
			PID:        c.PID,
			AgeSeconds: math.Round(c.Age.Seconds()),
		}
		if sizes && c.Bytes >= 0 {
			b := c.Bytes
			d.Bytes = &b
		}
		doc.Dirs = append(doc.Dirs, d)
	}
	return doc
}

// newCollectJSON builds the collect document from a report; rep is nil when
// nothing was done (busy root, missing default root).
func newCollectJSON(root string, rep *gc.Report, busy, dryRun bool) collectJSON {
	doc := collectJSON{
		Root:      root,
		Busy:      busy,
		DryRun:    dryRun,
		Reclaimed: []reclaimedJSON{},
		Kept:      []keptJSON{},
		Errors:    []errorJSON{},
	}
	if rep == nil {
		return doc
	}
	for _, o := range rep.Reclaimed {
		doc.Reclaimed = append(doc.Reclaimed, reclaimedJSON{Path: o.Path, Reason: string(o.Reason), Bytes: o.Bytes})
	}
	for _, c := range rep.Kept {
		doc.Kept = append(doc.Kept, keptJSON{Path: c.Path, Class: c.Class, Reason: string(c.Reason)})
	}
	for _, e := range rep.Errors {
		doc.Errors = append(doc.Errors, errorJSON{Path: e.Path, Error: e.Err.Error()})
	}
	doc.BytesFreed = rep.BytesFreed
	return doc
}

// writeListTable prints the candidates as an aligned table, then one
// summary line.
func writeListTable(w io.Writer, root string, cands []gc.Candidate, sizes bool) {
	fmt.Fprintf(w, "Root: %s\n", root)
	if len(cands) == 0 {
		fmt.Fprintln(w, "No data directories.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "PATH\tCLASS\tREASON\tPID\tAGE"
	if sizes {
		header += "\tSIZE"
	}
	fmt.Fprintln(tw, header+"\tDETAIL")
	for _, c := range cands {
		row := []string{relPath(root, c.Path), string(c.Class), string(c.Reason), formatPID(c.PID), formatAge(c.Age)}
		if sizes {
			row = append(row, formatBytes(c.Bytes))
		}
		row = append(row, candidateDetail(c))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()

	counts := map[gc.Class]int{}
	for _, c := range cands {
		counts[c.Class]++
	}
	fmt.Fprintf(w, "%s: %s.", plural(len(cands), "data directory", "data directories"), classCounts(counts))
	if counts[gc.ClassOrphan] > 0 {
		fmt.Fprint(w, ` "go-microvm-gc collect" reclaims the orphans.`)
	}
	fmt.Fprintln(w)
}

// writeCollectHuman prints what collect did (or, in a dry run, would do)
// and ends with the one-line summary.
func writeCollectHuman(w io.Writer, root string, rep *gc.Report) {
	fmt.Fprintf(w, "Root: %s\n", root)
	if len(rep.Reclaimed) > 0 {
		verb := "Reclaimed"
		if rep.DryRun {
			verb = "Would reclaim"
		}
		fmt.Fprintf(w, "%s:\n", verb)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PATH\tREASON\tBYTES")
		for _, o := range rep.Reclaimed {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", relPath(root, o.Path), o.Reason, formatBytes(o.Bytes))
		}
		tw.Flush()
	}
	if len(rep.Kept) > 0 {
		fmt.Fprintln(w, "Kept:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  PATH\tCLASS\tREASON\tDETAIL")
		for _, c := range rep.Kept {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", relPath(root, c.Path), c.Class, c.Reason, candidateDetail(c))
		}
		tw.Flush()
	}
	if len(rep.Errors) > 0 {
		fmt.Fprintln(w, "Errors:")
		for _, e := range rep.Errors {
			fmt.Fprintf(w, "  %s: %v\n", e.Path, e.Err)
		}
	}
	if rep.Deferred {
		fmt.Fprintln(w, "The deletion budget ran out; the rest is left for the next run.")
	}
	fmt.Fprintln(w, collectSummary(rep))
}

// collectSummary is the closing line, e.g. "Reclaimed 3 data directories,
// 2.1 GB freed; kept 5 (4 live, 1 stopped)".
func collectSummary(rep *gc.Report) string {
	counts := map[gc.Class]int{}
	for _, c := range rep.Kept {
		counts[c.Class]++
	}
	kept := fmt.Sprintf("kept %d", len(rep.Kept))
	if len(rep.Kept) > 0 {
		kept += " (" + classCounts(counts) + ")"
	}
	dirs := plural(len(rep.Reclaimed), "data directory", "data directories")
	var s string
	if rep.DryRun {
		var sum int64
		for _, o := range rep.Reclaimed {
			sum += o.Bytes
		}
		s = "Dry run: would reclaim " + dirs
		if sum > 0 {
			s += ", about " + humanize.Bytes(uint64(sum))
		}
		s += "; would keep" + strings.TrimPrefix(kept, "kept")
	} else {
		s = fmt.Sprintf("Reclaimed %s, %s freed; %s", dirs, humanize.Bytes(uint64(max(rep.BytesFreed, 0))), kept)
	}
	if len(rep.Errors) > 0 {
		s += "; " + plural(len(rep.Errors), "error", "errors")
	}
	return s
}

// classCounts renders counts like "4 live, 1 stopped" in classOrder.
func classCounts(counts map[gc.Class]int) string {
	var parts []string
	for _, cl := range classOrder {
		if n := counts[cl]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, cl))
		}
	}
	return strings.Join(parts, ", ")
}

func candidateDetail(c gc.Candidate) string {
	if c.Detail != "" {
		return c.Detail
	}
	if c.Err != nil {
		return c.Err.Error()
	}
	return ""
}

// relPath shows paths below root relative to it, which keeps tables narrow;
// root itself is ".".
func relPath(root, p string) string {
	rel, err := filepath.Rel(root, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return p
	}
	return rel
}

func formatPID(pid int) string {
	if pid <= 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}

func formatBytes(n int64) string {
	if n < 0 {
		return "-"
	}
	return humanize.Bytes(uint64(n))
}

// formatAge renders an age compactly: 45s, 12m, 5h, 3d.
func formatAge(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
