// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// benchRoots caches the trees of BenchmarkOrphans across its runs, since
// making 10,000 directories takes far longer than scanning them.
var (
	benchMu    sync.Mutex
	benchRoots = map[int]string{}
	benchBase  string
)

// benchRoot returns a root holding n data directories at depth 1, a mix
// of the common kinds: orphaned runs (marker set), stopped VMs, records of
// a dead PID, and records of a live process (this one). State and lock
// files are hard links to a few templates, which is what makes n = 10,000
// affordable; each lock template serves many directories so that parallel
// probes rarely meet on one inode.
func benchRoot(b *testing.B, n int) (root string, statePaths []string) {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if benchBase == "" {
		dir, err := os.MkdirTemp("", "gc-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchBase = dir
	}
	root = filepath.Join(benchBase, strconv.Itoa(n))
	names := func() []string {
		ps := make([]string, n)
		for i := range n {
			ps[i] = filepath.Join(root, fmt.Sprintf("vm-%05d", i), state.FileName)
		}
		return ps
	}
	if _, ok := benchRoots[n]; ok {
		return root, names()
	}
	self, err := procinfo.Lookup(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	tmpl := filepath.Join(benchBase, fmt.Sprintf("templates-%d", n))
	mkdir(b, tmpl)
	now := time.Now()
	kinds := []*state.State{
		{Version: 1, Active: true, Name: "orphan", PID: 1, PIDStartTime: now, CreatedAt: now, Leased: true},
		{Version: 1, Name: "stopped", CreatedAt: now},
		{Version: 1, Active: true, Name: "dead", PID: 1 << 30, PIDStartTime: now, CreatedAt: now},
		{Version: 1, Active: true, Name: "live", PID: self.PID, PIDStartTime: now, CreatedAt: now},
	}
	// A file takes at most 65,000 links on ext4: enough copies of each
	// kind that none comes near.
	copies := n/40000 + 1
	for i := range len(kinds) * copies {
		writeJSON(b, filepath.Join(tmpl, strconv.Itoa(i)), kinds[i%len(kinds)])
	}
	const locks = 64
	for i := range locks {
		writeFile(b, filepath.Join(tmpl, fmt.Sprintf("lock-%d", i)), "")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				dir := filepath.Join(root, fmt.Sprintf("vm-%05d", i))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					errs <- err
					return
				}
				if err := os.Link(filepath.Join(tmpl, strconv.Itoa(i%(len(kinds)*copies)), state.FileName), filepath.Join(dir, state.FileName)); err != nil {
					errs <- err
					return
				}
				if err := os.Link(filepath.Join(tmpl, fmt.Sprintf("lock-%d", i%locks)), filepath.Join(dir, state.LockFileName)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	benchRoots[n] = root
	return root, names()
}

func cleanupBench() {
	if benchBase != "" {
		os.RemoveAll(benchBase)
	}
}

// BenchmarkOrphans scans n data directories, against the floor of reading
// each state file once (os.ReadFile, one after the other) measured in the
// same iterations; x_floor is the ratio. Goal: at most 3.
func BenchmarkOrphans(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			root, paths := benchRoot(b, n)
			var floor, ours time.Duration
			for b.Loop() {
				b.StopTimer()
				start := time.Now()
				for _, p := range paths {
					if _, err := os.ReadFile(p); err != nil {
						b.Fatal(err)
					}
				}
				floor += time.Since(start)
				b.StartTimer()

				start = time.Now()
				orphans, err := Orphans(root)
				ours += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if len(orphans) < n/4 {
					b.Fatalf("%d orphans, want at least %d", len(orphans), n/4)
				}
			}
			ratio := float64(ours) / float64(floor)
			b.ReportMetric(ratio, "x_floor")
			b.Logf("Orphans over %d dirs: %.2f× the floor of reading each state file once", n, ratio)
		})
	}
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCollect reclaims 20 orphans of a few MB of small files each,
// against rm -rf of an identical tree measured in the same iterations:
// both trees are built and flushed to disk first, and the two take turns
// at going first. x_rm is Collect's total wall time over rm -rf's,
// median_x_rm the median of the per-iteration ratios; cpu_x_rm compares
// Collect's CPU time (user + system) with rm's. Floor (docs/BENCHMARKS.md):
// x_rm at most 1.0. GC_BENCH_NOSYNC=1 skips the flush: then both remove
// trees whose blocks the disk never saw, which is cheaper and far noisier,
// and not what an orphan left by an earlier boot is.
func BenchmarkCollect(b *testing.B) {
	const (
		orphans = 20
		dirs    = 8
		files   = 16
		size    = 16 << 10
	)
	build := func(root string) {
		var wg sync.WaitGroup
		for o := range orphans {
			wg.Go(func() {
				dir := filepath.Join(root, fmt.Sprintf("vm-%02d", o))
				makeVM(b, dir, orphanState())
				content := make([]byte, size)
				for d := range dirs {
					sub := filepath.Join(dir, rootfsWorkName, "tree", strconv.Itoa(d))
					mkdir(b, sub)
					for f := range files {
						if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(f)), content, 0o644); err != nil {
							b.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
	}
	var rm, ours, rmCPU, ourCPU time.Duration
	var ratios []float64
	var freed int64
	i := 0
	for b.Loop() {
		b.StopTimer()
		base := b.TempDir()
		rmRoot, gcRoot := filepath.Join(base, "rm"), filepath.Join(base, "gc")
		build(rmRoot)
		build(gcRoot)
		// Neither remover should get to drop dirty pages unwritten.
		if os.Getenv("GC_BENCH_NOSYNC") == "" {
			syscall.Sync()
		}
		runRm := func() time.Duration {
			cmd := exec.Command("rm", "-rf", rmRoot)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("rm -rf: %v: %s", err, out)
			}
			d := time.Since(start)
			rmCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			return d
		}
		runOurs := func() time.Duration {
			b.StartTimer()
			c0, start := selfCPU(), time.Now()
			rep, err := Collect(gcRoot)
			d := time.Since(start)
			ourCPU += selfCPU() - c0
			b.StopTimer()
			if err != nil || len(rep.Reclaimed) != orphans || len(rep.Errors) != 0 {
				b.Fatalf("Collect: %v, %d reclaimed, errors %v", err, len(rep.Reclaimed), rep.Errors)
			}
			freed = rep.BytesFreed
			return d
		}
		var dRm, dOurs time.Duration
		if i%2 == 0 {
			dRm = runRm()
			dOurs = runOurs()
		} else {
			dOurs = runOurs()
			dRm = runRm()
		}
		rm += dRm
		ours += dOurs
		ratios = append(ratios, float64(dOurs)/float64(dRm))
		i++
		b.StartTimer()
	}
	slices.Sort(ratios)
	ratio := float64(ours) / float64(rm)
	b.ReportMetric(ratio, "x_rm")
	b.ReportMetric(ratios[len(ratios)/2], "median_x_rm")
	b.ReportMetric(float64(ourCPU)/float64(rmCPU), "cpu_x_rm")
	b.ReportMetric(float64(freed)/(1<<20), "MB_freed")
	b.Logf("Collect of %d orphans (%d MB): %.2f× rm -rf of the same tree (median %.2f×, %d runs); CPU %v against rm's %v (%.2f×)",
		orphans, freed>>20, ratio, ratios[len(ratios)/2], i, ourCPU/time.Duration(i), rmCPU/time.Duration(i), float64(ourCPU)/float64(rmCPU))
}
