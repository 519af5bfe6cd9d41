// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stacklok/go-microvm/gc"
)

// TestProgressCounts: fed by a real Collect through gc.WithProgress, the
// progress line ends on the numbers the report gives.
func TestProgressCounts(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	for i := range 4 {
		makeOrphan(t, filepath.Join(root, fmt.Sprintf("vm%d", i)), 3)
	}
	var term bytes.Buffer
	// Never drawn by its loop (a delay of ages): the test draws once, at
	// the end, so the line does not depend on timing.
	p := startProgress(&term, 1<<62)
	rep, err := gc.Collect(root, gc.WithProgress(p.observe))
	p.stop()
	if err != nil || len(rep.Reclaimed) != 4 || len(rep.Errors) != 0 {
		t.Fatalf("Collect: %v, report %+v", err, rep)
	}
	p.draw()
	want := fmt.Sprintf("collect: 4 of 4 orphans reclaimed, %s freed", formatBytes(rep.BytesFreed))
	if !strings.HasSuffix(term.String(), want) {
		t.Errorf("progress line %q, want it to end %q", term.String(), want)
	}
	if got := p.classed.Load(); got != 4 {
		t.Errorf("%d classified, want 4", got)
	}
}
