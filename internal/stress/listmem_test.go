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

// listMemGoalMB is the floor (docs/BENCHMARKS.md) for the peak memory of
// `go-microvm-gc list --json` over 100,000 data directories.
const listMemGoalMB = 30

// layDataDirs lays n data directories under root, as an embedder with n
// VMs would have them, as cheaply as a listing allows: a directory each
// with its state file hard-linked from one of three templates beside root
// (most cleanly stopped, a tenth orphans by the marker, a tenth active
// with a dead runner, so every classification path is taken), and no
// rootfs-work, which a listing without --sizes never enters. One inode per
// directory is what makes 1,000,000 of them fit in a minute or two.
func layDataDirs(t testing.TB, root string, n int) {
	t.Helper()
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	dead := deadPID(t)
	now := time.Now()
	// ext4 allows 65,000 links to an inode: a fresh set of templates for
	// every linksPerTemplate directories.
	const linksPerTemplate = 50000
	templates := make([][3]string, (n+linksPerTemplate-1)/linksPerTemplate)
	for set := range templates {
		for kind := range templates[set] {
			s := state.State{
				Version:   state.CurrentVersion,
				Name:      fmt.Sprintf("template-%d", kind),
				Image:     "example.com/image:latest",
				CPUs:      2,
				MemoryMB:  2048,
				CreatedAt: now.Add(-time.Hour),
			}
			switch kind {
			case 1:
				s.Active, s.Leased, s.PID, s.PIDStartTime = true, true, dead, now
			case 2:
				s.Active, s.PID, s.PIDStartTime = true, dead, now.Add(-time.Hour)
			}
			b, err := json.Marshal(&s)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(filepath.Dir(root), fmt.Sprintf("state-template-%d-%d.json", set, kind))
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			templates[set][kind] = p
		}
	}
	// Several writers at once: even two syscalls per directory add up
	// to minutes at a million on a loaded machine.
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				kind := 0
				switch i % 10 {
				case 0:
					kind = 1
				case 1:
					kind = 2
				}
				dir := filepath.Join(root, fmt.Sprintf("vm-%07d", i))
				if err := os.Mkdir(dir, 0o755); err != nil {
					errs <- err
					return
				}
				if err := os.Link(templates[i/linksPerTemplate][kind], filepath.Join(dir, state.FileName)); err != nil {
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

// BenchmarkListPeakMemory measures `go-microvm-gc list --json` and
// `list --json-lines` (both streamed) over roots of 1,000 to 100,000 data
// directories (1,000,000 behind GO_MICROVM_BENCH_MILLION=1): their peak
// memory against the command over an empty root in the same run, and
// their CPU time per directory. Floor (docs/BENCHMARKS.md): `list --json`
// at most 30 MB at 100,000 directories, its 1,000,000 figure at most 1.5×
// the 100,000 one, and at most 60 µs of CPU per directory. Run it once
// (-benchtime 1x): laying out the roots dominates.
func BenchmarkListPeakMemory(b *testing.B) {
	tool := gcToolPath(b)
	empty := b.TempDir()
	emptyMB := runUsage(b, exec.Command(tool, "list", "--json", "--root", empty)).peakMB
	b.Logf("go-microvm-gc list --json over an empty root: peak %.1f MB", emptyMB)
	jsonPeaks, linesPeaks := map[int]float64{}, map[int]float64{}
	for _, n := range listBenchSizes() {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			root := filepath.Join(b.TempDir(), "root")
			layDataDirs(b, root, n)
			// One pass unmeasured: the first over a freshly laid root
			// pays for cold caches (about a third more CPU here), which
			// would fall on whichever form ran first.
			runUsage(b, exec.Command(tool, "list", "--json-lines", "--root", root))
			var u, l usage
			for b.Loop() {
				u = runUsage(b, exec.Command(tool, "list", "--json", "--root", root))
				l = runUsage(b, exec.Command(tool, "list", "--json-lines", "--root", root))
			}
			jsonPeaks[n], linesPeaks[n] = u.peakMB, l.peakMB
			perDir := float64(u.cpu.Nanoseconds()) / float64(n) / 1e3
			linesPerDir := float64(l.cpu.Nanoseconds()) / float64(n) / 1e3
			b.ReportMetric(u.peakMB, "json-peak-MB")
			b.ReportMetric(perDir, "json-cpu-µs/dir")
			b.ReportMetric(l.peakMB, "lines-peak-MB")
			b.ReportMetric(linesPerDir, "lines-cpu-µs/dir")
			b.Logf("go-microvm-gc list over %d data dirs: --json peak %.1f MB, CPU %.1f µs per dir; --json-lines peak %.1f MB, CPU %.1f µs per dir; empty root %.1f MB",
				n, u.peakMB, perDir, l.peakMB, linesPerDir, emptyMB)
			// The ratios are logged by the sub-benchmark: a parent's log
			// is shown only when it fails.
			switch n {
			case 100000:
				b.ReportMetric(u.peakMB/listMemGoalMB, "json-x-goal")
				b.Logf("list --json peak at 100,000 dirs: %.1f MB, %.2fx the goal of %d MB (--json-lines %.1f MB, %.2fx)",
					u.peakMB, u.peakMB/listMemGoalMB, listMemGoalMB, l.peakMB, l.peakMB/listMemGoalMB)
			case 1000000:
				if p, ok := jsonPeaks[100000]; ok {
					b.ReportMetric(u.peakMB/p, "json-x-100k")
					b.Logf("list --json peak at 1,000,000 dirs: %.1f MB, %.2fx the 100,000 figure (goal ≤ 1.5x); --json-lines %.1f MB, %.2fx",
						u.peakMB, u.peakMB/p, l.peakMB, l.peakMB/linesPeaks[100000])
				}
			}
		})
	}
}
