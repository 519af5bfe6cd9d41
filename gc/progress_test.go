// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// progressLog records what WithProgress reports, from any goroutine.
type progressLog struct {
	mu         sync.Mutex
	classified []Candidate
	reclaimed  []Orphan
}

func (l *progressLog) hook(p Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch p.Kind {
	case ProgressClassified:
		l.classified = append(l.classified, p.Candidate)
	case ProgressReclaimed:
		l.reclaimed = append(l.reclaimed, p.Orphan)
	}
}

// progressRoot lays out orphans, stopped VMs and an unreadable record.
func progressRoot(t *testing.T) string {
	root := t.TempDir()
	for i := range 12 {
		makeVM(t, filepath.Join(root, fmt.Sprintf("orphan-%02d", i)), orphanState())
	}
	for i := range 5 {
		writeJSON(t, filepath.Join(root, fmt.Sprintf("box-%d", i), "data"), stoppedState())
	}
	writeFile(t, filepath.Join(root, "broken", "go-microvm-state.json"), "{")
	return root
}

// TestWithProgressScan: a scan reports every candidate it returns, once.
func TestWithProgressScan(t *testing.T) {
	t.Parallel()
	root := progressRoot(t)
	var log progressLog
	cands, err := Scan(root, WithProgress(log.hook))
	if err != nil {
		t.Fatal(err)
	}
	if len(log.reclaimed) != 0 {
		t.Errorf("a scan reported %d reclaims", len(log.reclaimed))
	}
	if got, want := paths(log.classified), paths(cands); !slices.Equal(got, want) {
		t.Errorf("classified %v\nScan returned %v", got, want)
	}
}

// TestWithProgressCollect: the counts a progress display shows from the
// hook match what the real Collect reports: one classification per
// directory, one reclaim per orphan, with the same bytes freed; a dry run
// reclaims nothing.
func TestWithProgressCollect(t *testing.T) {
	t.Parallel()
	root := progressRoot(t)
	var dry progressLog
	if _, err := Collect(root, WithDryRun(), WithProgress(dry.hook)); err != nil {
		t.Fatal(err)
	}
	if len(dry.classified) != 18 || len(dry.reclaimed) != 0 {
		t.Errorf("dry run: %d classified, %d reclaimed; want 18, 0", len(dry.classified), len(dry.reclaimed))
	}

	var log progressLog
	rep := collect(t, root, WithProgress(log.hook))
	if len(rep.Reclaimed) != 12 {
		t.Fatalf("Collect reclaimed %d, want 12", len(rep.Reclaimed))
	}
	if got, want := len(log.classified), len(rep.Reclaimed)+len(rep.Kept); got != want {
		t.Errorf("classified %d, report names %d", got, want)
	}
	orphans := 0
	for _, c := range log.classified {
		if c.Class == ClassOrphan {
			orphans++
		}
	}
	if orphans != len(rep.Reclaimed) {
		t.Errorf("classified %d orphans, reclaimed %d", orphans, len(rep.Reclaimed))
	}
	slices.SortFunc(log.reclaimed, func(a, b Orphan) int { return strings.Compare(a.Path, b.Path) })
	if !slices.Equal(log.reclaimed, rep.Reclaimed) {
		t.Errorf("reported reclaims %+v\nreport %+v", log.reclaimed, rep.Reclaimed)
	}
	var freed int64
	for _, o := range log.reclaimed {
		freed += o.Bytes
	}
	if freed != rep.BytesFreed || freed <= 0 {
		t.Errorf("reported %d bytes freed, report %d", freed, rep.BytesFreed)
	}
}

func paths(cands []Candidate) []string {
	var p []string
	for _, c := range cands {
		p = append(p, c.Path)
	}
	slices.Sort(p)
	return p
}
