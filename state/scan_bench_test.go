// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package state_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/state"
)

// BenchmarkScanFastDecode times gc.ScanContext over a root of 200 data
// directories (state files as the runner writes them, a state lock, a
// rootfs-work) with the hand-written decoder on and off, alternating
// which goes first, and the parse of the same 200 files alone.
// x_scan and x_parse are the medians of off/on per iteration.
func BenchmarkScanFastDecode(b *testing.B) {
	defer state.SetFastDecode(true)
	root := b.TempDir()
	now := time.Now()
	var files [][]byte
	for i := range 200 {
		dir := filepath.Join(root, fmt.Sprintf("vm-%03d", i))
		if err := os.MkdirAll(filepath.Join(dir, "rootfs-work", "etc"), 0o755); err != nil {
			b.Fatal(err)
		}
		s := &state.State{Version: 1, Active: i%2 == 0, Name: fmt.Sprintf("vm-%03d", i),
			Image: "ghcr.io/example/sandbox:latest", CPUs: 2, MemoryMB: 2048,
			PID: 1<<22 + i, PIDStartTime: now, CreatedAt: now, Leased: true,
			Runner: &state.Identity{StartTime: 123456 + uint64(i), BootID: "6c0a4f6e-3b1d-4c55-9d0e-2f7d0c1b9a11",
				Executable: "/usr/libexec/go-microvm-runner", PIDNamespace: 4026531836}}
		data, err := json.Marshal(s)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, data)
		for name, content := range map[string][]byte{state.FileName: data, state.LockFileName: nil} {
			if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	scan := func(fast bool) time.Duration {
		state.SetFastDecode(fast)
		start := time.Now()
		cands, err := gc.ScanContext(context.Background(), root)
		d := time.Since(start)
		if err != nil || len(cands) != 200 {
			b.Fatalf("Scan: %d candidates, %v", len(cands), err)
		}
		return d
	}
	parse := func(fast bool) time.Duration {
		state.SetFastDecode(fast)
		start := time.Now()
		for _, f := range files {
			if _, err := state.Parse(f); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	var scanRatios, parseRatios []float64
	var on, off time.Duration
	i := 0
	for b.Loop() {
		first := i%2 == 0
		a, c := scan(first), scan(!first)
		if !first {
			a, c = c, a
		}
		on, off = on+a, off+c
		scanRatios = append(scanRatios, float64(c)/float64(a))
		a, c = parse(first), parse(!first)
		if !first {
			a, c = c, a
		}
		parseRatios = append(parseRatios, float64(c)/float64(a))
		i++
	}
	median := func(r []float64) float64 { slices.Sort(r); return r[len(r)/2] }
	b.ReportMetric(median(scanRatios), "x_scan")
	b.ReportMetric(median(parseRatios), "x_parse")
	b.Logf("200-dir scan: fast decoder on %v, off %v per scan; median off/on %.3f (scan), %.2f (parse alone)",
		on/time.Duration(i), off/time.Duration(i), median(scanRatios), median(parseRatios))
}
