// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/state"
)

// stoppedState is a cleanly stopped VM: never an orphan by default.
func stoppedState() *state.State {
	return &state.State{Version: 1, Name: "vm", CreatedAt: time.Now()}
}

// TestScanSeqYieldsWhatScanReturns checks that the streaming scan decides
// every directory as Scan does, in a root with data directories at both
// depths, and that Scan's sorted slice is built on it.
func TestScanSeqYieldsWhatScanReturns(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := range 40 {
		makeVM(t, filepath.Join(root, fmt.Sprintf("vm-%02d", i)), orphanState())
	}
	for i := range 5 {
		writeJSON(t, filepath.Join(root, fmt.Sprintf("box-%d", i), "data"), stoppedState())
	}
	want, err := Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 45 || !slices.IsSortedFunc(want, func(a, b Candidate) int { return strings.Compare(a.Path, b.Path) }) {
		t.Fatalf("Scan: %d candidates (want 45), sorted %v", len(want), slices.IsSortedFunc(want, func(a, b Candidate) int { return strings.Compare(a.Path, b.Path) }))
	}
	seen := map[string]Candidate{}
	for c, err := range ScanSeq(context.Background(), root) {
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := seen[c.Path]; dup {
			t.Fatalf("%s yielded twice", c.Path)
		}
		seen[c.Path] = c
	}
	for _, c := range want {
		got, ok := seen[c.Path]
		if !ok || got.Class != c.Class || got.Reason != c.Reason {
			t.Errorf("%s: streamed %+v, Scan %+v", c.Path, got, c)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("streamed %d candidates, Scan returned %d", len(seen), len(want))
	}
	var orphans int
	for o, err := range OrphansSeq(context.Background(), root) {
		if err != nil {
			t.Fatal(err)
		}
		if o.Reason == "" {
			t.Errorf("orphan %s without a reason", o.Path)
		}
		orphans++
	}
	if orphans != 40 {
		t.Errorf("OrphansSeq: %d orphans, want 40", orphans)
	}
}

// TestScanSeqBreakStopsTheWalk checks that leaving the loop early stops
// the walk: the iterator returns without entering every directory.
func TestScanSeqBreakStopsTheWalk(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	const n = 256
	for i := range n {
		writeJSON(t, filepath.Join(root, fmt.Sprintf("vm-%03d", i)), stoppedState())
	}
	var entered atomic.Int64
	count := withHooks(hooks{entered: func(string) { entered.Add(1) }})
	got := 0
	for _, err := range ScanSeq(context.Background(), root, count) {
		if err != nil {
			t.Fatal(err)
		}
		got++
		if got == 3 {
			break
		}
	}
	if e := entered.Load(); e >= int64(n) {
		t.Errorf("the walk entered %d directories after the loop stopped at 3", e)
	}
}

// TestScanSeqEndsWithContextError checks that a cancelled context ends the
// stream with the context's error, last.
func TestScanSeqEndsWithContextError(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for i := range 20 {
		writeJSON(t, filepath.Join(root, fmt.Sprintf("vm-%02d", i)), stoppedState())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last error
	n := 0
	for _, err := range ScanSeq(ctx, root) {
		n++
		if n == 1 {
			cancel()
		}
		last = err
	}
	if !errors.Is(last, context.Canceled) {
		t.Fatalf("last yield: %v, want context.Canceled", last)
	}
}

// TestScanSeqMissingRoot checks that a root that does not exist yields
// nothing, as Scan returns nothing.
func TestScanSeqMissingRoot(t *testing.T) {
	t.Parallel()
	for c, err := range ScanSeq(context.Background(), filepath.Join(t.TempDir(), "missing")) {
		t.Fatalf("yielded %+v, %v", c, err)
	}
}
