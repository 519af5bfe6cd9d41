// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/state"
)

// listMemGoalMB is issue 13's goal for the peak memory of
// `go-microvm-gc list --json` over 100,000 data directories.
const listMemGoalMB = 30

// layDataDirs lays n data directories under root, as an embedder with n
// VMs would have them: a state file and a small rootfs-work each; most
// cleanly stopped, a tenth orphans by the marker, a tenth active with a
// dead runner, so every classification path is taken. The state files are
// written directly (no fsync), which is what makes 10,000 of them quick.
func layDataDirs(t testing.TB, root string, n int) {
	t.Helper()
	dead := deadPID(t)
	now := time.Now()
	// Several writers at once: laying out 100,000 directories one by one
	// takes minutes on a loaded machine.
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if err := layDataDir(root, i, dead, now); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// layDataDir lays out the data directory number i of layDataDirs.
func layDataDir(root string, i, dead int, now time.Time) error {
	dir := filepath.Join(root, fmt.Sprintf("vm-%07d", i))
	if err := os.MkdirAll(filepath.Join(dir, "rootfs-work", "etc"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs-work", "etc", "hostname"), []byte("vm\n"), 0o644); err != nil {
		return err
	}
	s := state.State{
		Version:   state.CurrentVersion,
		Name:      fmt.Sprintf("vm-%07d", i),
		Image:     "example.com/image:latest",
		CPUs:      2,
		MemoryMB:  2048,
		CreatedAt: now.Add(-time.Duration(i) * time.Minute),
	}
	switch i % 10 {
	case 0:
		s.Active, s.Leased, s.PID, s.PIDStartTime = true, true, dead, now
	case 1:
		s.Active, s.PID, s.PIDStartTime = true, dead, now.Add(-time.Hour)
	}
	b, err := json.Marshal(&s)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, state.FileName), b, 0o644)
}

// usage is what the kernel accounted to a finished child process.
type usage struct {
	peakMB float64       // peak resident set size, 10^6 bytes
	cpu    time.Duration // user + system CPU time
}

// runUsage runs cmd (its output discarded) and returns its peak resident
// set size and CPU time. The peak comes from /usr/bin/time, which forks the
// command itself: the rusage this process reads of a child counts this
// process's pages too, shared with the child until its exec. The CPU time
// is the child's rusage (time's own share is negligible). Without
// /usr/bin/time the benchmark is skipped.
func runUsage(t testing.TB, cmd *exec.Cmd) usage {
	t.Helper()
	timePath, err := exec.LookPath("/usr/bin/time")
	if err != nil {
		t.Skip("no /usr/bin/time to read the peak memory of a child")
	}
	cmd = exec.Command(timePath, append([]string{"-f", "peak-kb %M"}, cmd.Args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, stderr.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatalf("no rusage for %v", cmd.Args)
	}
	out := stderr.String()
	i := strings.LastIndex(out, "peak-kb ")
	var kb float64
	if i < 0 {
		t.Fatalf("no peak in %q", out)
	}
	if _, err := fmt.Sscanf(out[i:], "peak-kb %f", &kb); err != nil {
		t.Fatalf("no peak in %q: %v", out, err)
	}
	return usage{
		peakMB: kb * 1024 / 1e6,
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
	}
}

// listBenchSizes are the root sizes of BenchmarkListPeakMemory: 1,000,
// 10,000 and 100,000 data directories, and 1,000,000 as well when
// GO_MICROVM_BENCH_MILLION=1 (about 3 million inodes and several minutes
// to lay out).
func listBenchSizes() []int {
	sizes := []int{1000, 10000, 100000}
	if os.Getenv("GO_MICROVM_BENCH_MILLION") == "1" {
		sizes = append(sizes, 1000000)
	}
	return sizes
}

// BenchmarkListPeakMemory measures `go-microvm-gc list --json-lines` (the
// streamed listing) and `list --json` (one sorted document) over roots of
// 1,000 to 100,000 data directories (1,000,000 behind
// GO_MICROVM_BENCH_MILLION=1): their peak memory against the command over
// an empty root in the same run, and their CPU time per directory.
// Goals (issue 13): at most 30 MB at 100,000 directories, the 1,000,000
// figure at most 1.5× the 100,000 one, and at most 40 µs of CPU per
// directory. Run it once (-benchtime 1x): laying out the roots dominates.
func BenchmarkListPeakMemory(b *testing.B) {
	tool := gcToolPath(b)
	empty := b.TempDir()
	emptyMB := runUsage(b, exec.Command(tool, "list", "--json", "--root", empty)).peakMB
	b.Logf("go-microvm-gc list --json over an empty root: peak %.1f MB", emptyMB)
	peaks := map[int]float64{}
	for _, n := range listBenchSizes() {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			root := filepath.Join(b.TempDir(), "root")
			layDataDirs(b, root, n)
			var u, l usage
			for b.Loop() {
				u = runUsage(b, exec.Command(tool, "list", "--json", "--root", root))
				l = runUsage(b, exec.Command(tool, "list", "--json-lines", "--root", root))
			}
			peaks[n] = l.peakMB
			perDir := float64(u.cpu.Nanoseconds()) / float64(n) / 1e3
			linesPerDir := float64(l.cpu.Nanoseconds()) / float64(n) / 1e3
			b.ReportMetric(u.peakMB, "json-peak-MB")
			b.ReportMetric(perDir, "json-cpu-µs/dir")
			b.ReportMetric(l.peakMB, "lines-peak-MB")
			b.ReportMetric(linesPerDir, "lines-cpu-µs/dir")
			b.Logf("go-microvm-gc list over %d data dirs: --json-lines peak %.1f MB, CPU %.1f µs per dir; --json (one sorted document) peak %.1f MB, CPU %.1f µs per dir; empty root %.1f MB",
				n, l.peakMB, linesPerDir, u.peakMB, perDir, emptyMB)
		})
	}
	if p, ok := peaks[100000]; ok {
		b.Logf("--json-lines peak at 100,000 dirs: %.1f MB, goal %d MB: %.2fx", p, listMemGoalMB, p/listMemGoalMB)
		if m, ok := peaks[1000000]; ok {
			b.Logf("--json-lines peak at 1,000,000 dirs: %.1f MB, %.2fx the 100,000 figure (goal ≤ 1.5x)", m, m/p)
		}
	}
}
