// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dustin/go-humanize"

	"github.com/stacklok/go-microvm/gc"
)

// classOrder is the order classes are counted in summaries: what is
// reclaimable first, then what is kept and why.
var classOrder = []gc.Class{
	gc.ClassOrphan, gc.ClassLive, gc.ClassBusy, gc.ClassStopped, gc.ClassUnknown, gc.ClassUnreadable,
}

// tableSink is the listing for a person: each root's data directories,
// sorted by path, and its pending trash as a table, then one summary line;
// or with -q the paths alone. It holds the listing: the table needs every
// row for its widths.
type tableSink struct {
	w       *outWriter
	lf      *listFlags
	dirs    map[string][]*dirJSON
	trashes map[string]*trashJSON
}

func (s *tableSink) dir(root string, d *dirJSON) { s.dirs[root] = append(s.dirs[root], d) }

func (s *tableSink) trash(root string, t *trashJSON) { s.trashes[root] = t }

func (s *tableSink) end(sum *summaryLine) {
	if len(sum.Missing) > 0 {
		s.w.println(missingMessage(sum.Missing, "list"))
		return
	}
	var trash []*trashJSON
	for _, r := range sum.Roots {
		dirs, t := s.dirs[r.Path], s.trashes[r.Path]
		slices.SortStableFunc(dirs, func(a, b *dirJSON) int { return strings.Compare(a.Path, b.Path) })
		switch {
		case s.lf.quiet:
			for _, d := range dirs {
				s.w.println(quote(d.Path))
			}
			continue
		case len(dirs) > 0 || t != nil:
			s.w.printf("Root: %s\n", quote(r.Path))
			writeListTable(s.w, r.Path, dirs, t, s.lf.sizes)
		case slices.Contains(sum.failed, r.Path):
			// The error is on stderr; "no data directories" would claim
			// an empty root that was never read.
			s.w.printf("Root: %s\nNot listed: the root could not be read.\n", quote(r.Path))
		default:
			s.w.printf("Root: %s\nNo data directories.\n", quote(r.Path))
		}
		if t != nil {
			trash = append(trash, t)
		}
	}
	if !s.lf.quiet && (len(trash) > 0 || len(s.dirs) > 0) {
		s.w.println(listSummary(sum.Counts, trash, s.lf.sizes, s.lf.reproduce()))
	}
}

// writeListTable prints the table of one root's data directories and
// trash, with their sizes when measured.
func writeListTable(w *outWriter, root string, dirs []*dirJSON, trash *trashJSON, sizes bool) {
	rows := [][]string{{"PATH", "CLASS", "REASON", "PID", "AGE", "SIZE", "DETAIL"}}
	for _, d := range dirs {
		rows = append(rows, append(candidateRow(root, &d.candidateJSON), formatBytesPtr(d.Bytes), quote(d.Detail)))
	}
	if trash != nil {
		rows = append(rows, []string{quote(relPath(root, trash.Path)), "trash", "pending", "-", "-", formatBytesPtr(trash.Bytes),
			plural(trash.Entries, "entry", "entries") + " left by an earlier collect"})
	}
	if !sizes {
		for i := range rows {
			rows[i] = slices.Delete(rows[i], 5, 6)
		}
	}
	writeTable(w, "", rows)
}

// candidateRow is c's PATH, CLASS, REASON, PID and AGE in a table.
func candidateRow(root string, c *candidateJSON) []string {
	return []string{quote(relPath(root, c.Path)), string(c.Class), c.Reason, formatPID(c.PID),
		formatAge(time.Duration(c.AgeSeconds) * time.Second)}
}

// writeTable prints rows as aligned columns, each line after indent.
func writeTable(w io.Writer, indent string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rows {
		_, _ = fmt.Fprintln(tw, indent+strings.Join(r, "\t"))
	}
	// A failed write is kept by the outWriter under w.
	_ = tw.Flush()
}

// listSummary is the line after the list tables: the counts, and the
// collect command (again its arguments) that reclaims what there is.
func listSummary(counts map[gc.Class]int, trash []*trashJSON, sizes bool, again string) string {
	collect := strings.TrimSpace("go-microvm-gc collect " + again)
	total := 0
	for _, n := range counts {
		total += n
	}
	s := plural(total, "data directory", "data directories")
	if total > 0 {
		s += ": " + classCounts(counts)
	}
	s += "."
	if len(trash) > 0 {
		s += " Pending trash"
		if sizes {
			var sum int64
			for _, t := range trash {
				if t.Bytes != nil {
					sum += *t.Bytes
				}
			}
			s += " of " + humanize.Bytes(uint64(sum))
		}
		s += "."
	}
	switch {
	case counts[gc.ClassOrphan] > 0:
		s += fmt.Sprintf(" %q reclaims the orphans.", collect)
	case len(trash) > 0:
		s += fmt.Sprintf(" %q empties the trash.", collect)
	}
	return s
}

// writeCollectHuman prints what collect did (or, in a dry run, would do)
// in each root and ends with one summary line.
func writeCollectHuman(w *outWriter, results []rootResult, dryRun, interrupted bool) {
	var all gc.Report
	all.DryRun = dryRun
	var trashBytes int64
	for _, r := range results {
		w.printf("Root: %s\n", quote(r.root))
		switch {
		case r.busy:
			w.println("Skipped: another collector holds the root lock.")
			continue
		case r.rep == nil:
			w.println("Skipped: the root could not be opened or locked.")
			continue
		}
		trashBytes += writeRootReport(w, r, dryRun, interrupted)
		all.Reclaimed = append(all.Reclaimed, r.rep.Reclaimed...)
		all.Kept = append(all.Kept, r.rep.Kept...)
		all.Errors = append(all.Errors, r.rep.Errors...)
		all.BytesFreed += r.rep.BytesFreed
	}
	w.println(collectSummary(&all, trashBytes, interrupted))
}

// writeRootReport prints what collect did in the root of r, whose report
// is set, and returns the bytes of the pending trash a dry run found.
func writeRootReport(w *outWriter, r rootResult, dryRun, interrupted bool) int64 {
	rep := r.rep
	if len(rep.Reclaimed) > 0 {
		rows := [][]string{{"PATH", "REASON", "BYTES"}}
		for _, o := range rep.Reclaimed {
			rows = append(rows, []string{quote(relPath(r.root, o.Path)), string(o.Reason), formatBytes(o.Bytes)})
		}
		verb := "Reclaimed:"
		if dryRun {
			verb = "Would reclaim:"
		}
		w.println(verb)
		writeTable(w, "  ", rows)
	}
	if len(rep.Kept) > 0 {
		rows := [][]string{{"PATH", "CLASS", "REASON", "PID", "AGE", "DETAIL"}}
		for _, c := range rep.Kept {
			cj := newCandidateJSON(c)
			rows = append(rows, append(candidateRow(r.root, &cj), quote(cj.Detail)))
		}
		w.println("Kept:")
		writeTable(w, "  ", rows)
	}
	if len(rep.Errors) > 0 {
		w.println("Errors:")
		for _, e := range rep.Errors {
			where := relPath(r.root, e.Path)
			if inTrash(e.Path) {
				where += " (trash left by an earlier run)"
			}
			w.printf("  %s: %s\n", quote(where), quote(opError(e)))
		}
	}
	var trashBytes int64
	for _, t := range r.trash {
		w.printf("Would empty the trash %s: %s, %s.\n", quote(relPath(r.root, t.Path)),
			plural(t.Entries, "entry", "entries"), formatBytes(t.Bytes))
		trashBytes += max(t.Bytes, 0)
	}
	if r.lockErr != nil {
		then := "a real run would fail"
		if pe := (*fs.PathError)(nil); errors.As(r.lockErr, &pe) && pe.Op == "use" {
			// A lock file planted by another user: gc.Collect goes on without it.
			then = "a real run would reclaim in place without it"
		}
		w.printf("Note: as this user, collect could not take the root lock (%s): %s.\n", quote(r.lockErr.Error()), then)
	}
	if rep.Deferred && !interrupted {
		// An interrupt says so itself, on stderr.
		w.println("The deletion budget ran out; the rest is left for the next run.")
	}
	return trashBytes
}

// collectSummary is the closing line, e.g. "Reclaimed 3 data directories,
// 2.1 GB freed; kept 5 (4 live, 1 stopped)". trashBytes is, in a dry run,
// the pending trash a collect would also free.
func collectSummary(rep *gc.Report, trashBytes int64, interrupted bool) string {
	counts := map[gc.Class]int{}
	for _, c := range rep.Kept {
		counts[c.Class]++
	}
	kept := fmt.Sprintf("kept %d", len(rep.Kept))
	if len(rep.Kept) > 0 {
		kept += " (" + classCounts(counts) + ")"
	}
	dirs := plural(len(rep.Reclaimed), "data directory", "data directories")
	freed := formatBytes(max(rep.BytesFreed, 0))
	s := fmt.Sprintf("Reclaimed %s, %s freed; %s", dirs, freed, kept)
	switch {
	case rep.DryRun:
		sum := trashBytes
		for _, o := range rep.Reclaimed {
			sum += o.Bytes
		}
		s = "Dry run: would reclaim " + dirs
		if trashBytes > 0 {
			s += " and empty the trash"
		}
		s += ", " + formatBytes(max(sum, 0)) + " in all; would keep" + strings.TrimPrefix(kept, "kept")
	case interrupted:
		s = fmt.Sprintf("Interrupted after reclaiming %s, %s freed; %s; the rest is left for the next run", dirs, freed, kept)
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

func formatBytesPtr(n *int64) string {
	if n == nil {
		return "-"
	}
	return formatBytes(*n)
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

// opError is what failed at a report error's path, without the path (the
// output shows it apart): the operation and its error.
func opError(e *fs.PathError) string { return e.Op + ": " + e.Err.Error() }

// quote makes s safe to print on a terminal: s itself when every rune is
// printable, else Go's quoted form. A directory name is chosen by whoever
// made it, so a name with an escape sequence or a newline must not colour
// the screen or add a fake row to a table. JSON output stays exact.
func quote(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}
