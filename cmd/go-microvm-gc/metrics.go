// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stacklok/go-microvm/gc"
)

// metricPrefix starts every metric name.
const metricPrefix = "go_microvm_gc_"

// lastSuccessMetric keeps its value across runs that did not succeed.
const lastSuccessMetric = metricPrefix + "last_success_timestamp_seconds"

// writeMetrics writes the outcome of a collection in the Prometheus text
// format to path, for node_exporter's textfile collector. The file is
// replaced atomically (written beside it, synced, renamed), so a scrape
// never sees half of it. The last success timestamp of a root is carried
// over from the previous file when this run did not succeed there.
func writeMetrics(path string, results []rootResult, interrupted bool, now time.Time) error {
	lastSuccess := readLastSuccess(path)
	var b bytes.Buffer
	family := func(name, help string) {
		fmt.Fprintf(&b, "# HELP %s%s %s\n# TYPE %s%s gauge\n", metricPrefix, name, help, metricPrefix, name)
	}
	sample := func(name string, labels string, v float64) {
		fmt.Fprintf(&b, "%s%s{%s} %s\n", metricPrefix, name, labels, strconv.FormatFloat(v, 'f', -1, 64))
	}
	root := func(r rootResult) string { return `root="` + escapeLabel(r.root) + `"` }
	for _, m := range []struct {
		name, help string
		v          func(r rootResult) float64
	}{
		{"reclaimed_dirs", "Data directories reclaimed by the last collection.",
			func(r rootResult) float64 { return float64(len(r.report().Reclaimed)) }},
		{"freed_bytes", "Allocated bytes freed by the last collection, trash of earlier runs included.",
			func(r rootResult) float64 { return float64(r.report().BytesFreed) }},
		{"errors", "Errors of the last collection (each names a path on stderr and in --json).",
			func(r rootResult) float64 { return float64(len(r.report().Errors)) + boolFloat(r.fatal != nil) }},
		{"busy", "1 when another collector held the root lock, so the last collection did nothing.",
			func(r rootResult) float64 { return boolFloat(r.busy) }},
		{"deferred", "1 when the last collection left work for the next run (interrupted or out of budget).",
			func(r rootResult) float64 { return boolFloat(r.report().Deferred || interrupted) }},
		{"duration_seconds", "How long the last collection took.",
			func(r rootResult) float64 { return r.duration.Seconds() }},
		{"last_run_timestamp_seconds", "When the last collection ended, in Unix seconds.",
			func(rootResult) float64 { return float64(now.Unix()) }},
	} {
		family(m.name, m.help)
		for _, r := range results {
			sample(m.name, root(r), m.v(r))
		}
	}
	family("kept_dirs", "Data directories kept by the last collection, by class.")
	for _, r := range results {
		counts := map[gc.Class]int{}
		for _, c := range r.report().Kept {
			counts[c.Class]++
		}
		for _, cl := range classOrder {
			sample("kept_dirs", root(r)+`,class="`+escapeLabel(string(cl))+`"`, float64(counts[cl]))
		}
	}
	family("last_success_timestamp_seconds", "When a collection last ended without error, busy root or interrupt, in Unix seconds.")
	for _, r := range results {
		v, ok := lastSuccess[root(r)]
		if !interrupted && !r.busy && r.fatal == nil && r.rep != nil && len(r.rep.Errors) == 0 {
			v, ok = float64(now.Unix()), true
		}
		if ok {
			sample("last_success_timestamp_seconds", root(r), v)
		}
	}
	return writeFileAtomic(path, b.Bytes())
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// escapeLabel escapes a label value as the text format wants: backslash,
// double quote and newline.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// checkMetricsFile refuses a --metrics-file that names something other
// than a regular file: the rename would replace it, and a FIFO would make
// the read of the last success wait forever.
func checkMetricsFile(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().IsRegular() {
		// Missing: it is created. Unreachable: the write says why.
		return nil
	}
	return usagef("--metrics-file %s: not a regular file; name a file to be replaced, or a new one", quote(path))
}

// readLastSuccess reads the last success timestamps, by label set, from
// an earlier metrics file; a missing or foreign file has none, nor has
// anything but a regular file, which is neither followed nor waited on.
func readLastSuccess(path string) map[string]float64 {
	out := map[string]float64{}
	f, err := os.OpenFile(path, os.O_RDONLY|openNoWait, 0)
	if err != nil {
		return out
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return out
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), lastSuccessMetric+"{")
		if !ok {
			continue
		}
		i := strings.LastIndex(line, "} ")
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+2:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory (its name does not end in .prom, so the textfile collector
// never reads it), synced, renamed over path, then the directory synced.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	_, err = tmp.Write(data)
	// 0644: the exporter often runs as another user.
	if err = errors.Join(err, tmp.Chmod(0o644), tmp.Sync(), tmp.Close()); err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write metrics: %w", err)
	}
	// Some filesystems refuse to sync a directory; the file is in place.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
