// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/stacklok/go-microvm/gc"
)

// classOrder is the order classes are counted in summaries: what is
// reclaimable first, then what is kept and why.
var classOrder = []gc.Class{
	gc.ClassOrphan, gc.ClassLive, gc.ClassBusy, gc.ClassStopped, gc.ClassUnknown, gc.ClassUnreadable,
}

// writeListTables prints each root's candidates and pending trash as an
// aligned table, then one summary line for all roots. again is the part
// of the command line that reproduces this listing, for the hint.
func writeListTables(w *outWriter, listings []rootListing, sizes bool, again string) {
	t := listTotals{counts: map[gc.Class]int{}}
	for _, l := range listings {
		w.printf("Root: %s\n", quote(l.root))
		if len(l.cands) == 0 && len(l.trash) == 0 {
			if l.scanErr != nil {
				// The error is on stderr; "no data directories" would
				// claim an empty root that was never read.
				w.println("Not listed: the root could not be read.")
			} else {
				w.println("No data directories.")
			}
			continue
		}
		writeListTable(w, l, sizes, &t)
	}
	if t.total == 0 && t.trashDirs == 0 {
		return
	}
	w.println(listSummary(&t, sizes, again))
}

// listTotals is what the list tables showed, for the summary line.
type listTotals struct {
	// counts is the number of data directories of each class.
	counts map[gc.Class]int
	// total is the number of data directories.
	total int
	// trashDirs is the number of pending trash directories, holding
	// trashBytes (counting only those measured).
	trashDirs  int
	trashBytes int64
}

// writeListTable prints the table of one root's listing l, adding what it
// shows to t.
func writeListTable(w *outWriter, l rootListing, sizes bool, t *listTotals) {
	tw := w.table()
	header := "PATH\tCLASS\tREASON\tPID\tAGE"
	if sizes {
		header += "\tSIZE"
	}
	tw.println(header + "\tDETAIL")
	for _, c := range l.cands {
		row := []string{quote(relPath(l.root, c.Path)), string(c.Class), string(c.Reason), formatPID(c.PID), formatAge(c.Age)}
		if sizes {
			row = append(row, formatBytes(c.Bytes))
		}
		row = append(row, quote(candidateDetail(c)))
		tw.println(strings.Join(row, "\t"))
		t.counts[c.Class]++
		t.total++
	}
	for _, tr := range l.trash {
		row := []string{quote(relPath(l.root, tr.Path)), "trash", "pending", "-", "-"}
		if sizes {
			row = append(row, formatBytes(tr.Bytes))
		}
		row = append(row, plural(tr.Entries, "entry", "entries")+" left by an earlier collect")
		tw.println(strings.Join(row, "\t"))
		t.trashDirs++
		t.trashBytes += max(tr.Bytes, 0)
	}
	tw.flush()
}

// listSummary is the line after the list tables: the counts, and the
// collect command that reclaims what there is to reclaim.
func listSummary(t *listTotals, sizes bool, again string) string {
	collect := "go-microvm-gc collect"
	if again != "" {
		collect += " " + again
	}
	s := plural(t.total, "data directory", "data directories")
	if t.total > 0 {
		s += ": " + classCounts(t.counts)
	}
	s += "."
	if t.trashDirs > 0 {
		s += " Pending trash"
		if sizes {
			s += " of " + humanize.Bytes(uint64(t.trashBytes))
		}
		s += "."
	}
	switch {
	case t.counts[gc.ClassOrphan] > 0:
		s += fmt.Sprintf(" %q reclaims the orphans.", collect)
	case t.trashDirs > 0:
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
	writeReclaimed(w, r.root, rep.Reclaimed, dryRun)
	writeKept(w, r.root, rep.Kept)
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

// writeReclaimed prints the table of the orphans reclaimed under root
// (or, in a dry run, that would be); nothing when there are none.
func writeReclaimed(w *outWriter, root string, reclaimed []gc.Orphan, dryRun bool) {
	if len(reclaimed) == 0 {
		return
	}
	verb := "Reclaimed"
	if dryRun {
		verb = "Would reclaim"
	}
	w.printf("%s:\n", verb)
	tw := w.table()
	tw.println("  PATH\tREASON\tBYTES")
	for _, o := range reclaimed {
		tw.printf("  %s\t%s\t%s\n", quote(relPath(root, o.Path)), o.Reason, formatBytes(o.Bytes))
	}
	tw.flush()
}

// writeKept prints the table of the data directories kept under root;
// nothing when there are none.
func writeKept(w *outWriter, root string, kept []gc.Candidate) {
	if len(kept) == 0 {
		return
	}
	w.println("Kept:")
	tw := w.table()
	tw.println("  PATH\tCLASS\tREASON\tPID\tAGE\tDETAIL")
	for _, c := range kept {
		tw.printf("  %s\t%s\t%s\t%s\t%s\t%s\n", quote(relPath(root, c.Path)), c.Class, c.Reason,
			formatPID(c.PID), formatAge(c.Age), quote(candidateDetail(c)))
	}
	tw.flush()
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
	var s string
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
		s += ", " + humanize.Bytes(uint64(max(sum, 0))) + " in all; would keep" + strings.TrimPrefix(kept, "kept")
	case interrupted:
		s = fmt.Sprintf("Interrupted after reclaiming %s, %s freed; %s; the rest is left for the next run",
			dirs, humanize.Bytes(uint64(max(rep.BytesFreed, 0))), kept)
	default:
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

// opError is what failed at a report error's path, without the path (the
// output shows it apart): the operation and its error.
func opError(e *fs.PathError) string { return e.Op + ": " + e.Err.Error() }
