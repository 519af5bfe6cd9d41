// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package gc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// buildOrphanTree lays out below dir a rootfs-work of files files shaped
// like a guest's: nested directories of 5 to 30 entries, mostly small
// files, one symlink in twenty.
func buildOrphanTree(b *testing.B, dir string, seed uint64, files int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, 32<<10)
	queue := []string{filepath.Join(dir, rootfsWorkName)}
	mkdir(b, queue[0])
	for n := 0; n < files; {
		if len(queue) == 0 {
			queue = append(queue, filepath.Join(dir, rootfsWorkName, "x"+strconv.Itoa(n)))
			mkdir(b, queue[0])
		}
		d := queue[0]
		queue = queue[1:]
		for k := min(files-n, 5+rng.IntN(26)); k > 0; k-- {
			p := filepath.Join(d, "f"+strconv.Itoa(n))
			var err error
			switch r := rng.IntN(100); {
			case r < 5:
				err = os.Symlink("../lib/x", p)
			case r < 65:
				err = os.WriteFile(p, data[:rng.IntN(1<<10+1)], 0o644)
			case r < 95:
				err = os.WriteFile(p, data[:rng.IntN(8<<10+1)], 0o644)
			default:
				err = os.WriteFile(p, data[:rng.IntN(32<<10+1)], 0o644)
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		for k := 1 + rng.IntN(4); strings.Count(d, "/d") < 6 && k > 0; k-- {
			p := filepath.Join(d, "d"+strconv.Itoa(n)+"-"+strconv.Itoa(k))
			mkdir(b, p)
			queue = append(queue, p)
		}
	}
}

// BenchmarkFastPaths measures gc's fast paths on a realistic root of 200
// data directories: 100 live VMs whose leases 20 runner processes hold
// (5 each, marker set), 20 live VMs of released runners (no lease, the
// record names its own live process), 76 stopped VMs and 4 orphans whose
// rootfs-work holds GC_BENCH_ORPHAN_FILES files (20,000). Each iteration
// runs, for every variant in a rotating order (all fast paths on, then
// each one off): with the orphans laid out and flushed, 5 Scans, then
// Collect (which reclaims them), then 5 claim collections
// (CollectContext with the claim's budget, nothing left to reclaim).
// x_<what>_<path>_off is the median over the iterations of the variant's
// wall time over the all-on time, x_<what>_cpu_<path>_off of its CPU time
// (user + system of this process).
//
//	go test -run '^$' -bench FastPaths -benchtime 5x ./gc/
func BenchmarkFastPaths(b *testing.B) {
	files := 20000
	if s := os.Getenv("GC_BENCH_ORPHAN_FILES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("GC_BENCH_ORPHAN_FILES=%q", s)
		}
		files = v
	}
	const runners, perRunner, released, stopped, orphans = 20, 5, 20, 76, 4
	root := b.TempDir()
	boot, _ := procinfo.BootID()
	n := 0
	next := func() string {
		n++
		return filepath.Join(root, fmt.Sprintf("vm-%03d", n))
	}
	for r := range runners {
		var dirs []string
		for range perRunner {
			dirs = append(dirs, next())
			mkdir(b, dirs[len(dirs)-1])
		}
		h := startHelper(b, "lease", strings.Join(dirs, "\n"), "ready")
		info := lookup(b, h.Pid())
		id := &state.Identity{StartTime: info.StartTime, BootID: boot, Executable: info.Executable}
		for _, dir := range dirs {
			makeVM(b, dir, &state.State{Version: 1, Active: true, Leased: true, Name: filepath.Base(dir),
				PID: h.Pid(), PIDStartTime: info.Started, CreatedAt: time.Now(), Runner: id})
		}
		if r < released {
			// A released runner holds no lease: its record is judged by
			// its process alone.
			dir := next()
			makeVM(b, dir, &state.State{Version: 1, Active: true, Name: filepath.Base(dir),
				PID: h.Pid(), PIDStartTime: info.Started, CreatedAt: time.Now()})
		}
	}
	for range stopped {
		dir := next()
		makeVM(b, dir, &state.State{Version: 1, Name: filepath.Base(dir), CreatedAt: time.Now()})
	}
	variants := []struct {
		name string
		h    hooks
	}{
		{"on", hooks{}},
		{"getdents", hooks{plainDirents: true}},
		{"proclocks", hooks{lockTable: filepath.Join(root, "no-such-table")}},
		{"pidcache", hooks{noAliveCache: true}},
	}
	kept := runners*perRunner + released + stopped
	ctx := context.Background()
	type times struct{ scan, collect, claim, scanCPU, claimCPU time.Duration }
	var ratios [5][][]float64
	for k := range ratios {
		ratios[k] = make([][]float64, len(variants))
	}
	total := make([]times, len(variants))
	i := 0
	for b.Loop() {
		took := make([]times, len(variants))
		for j := range variants {
			v := (i + j) % len(variants)
			opt := withHooks(variants[v].h)
			b.StopTimer()
			for o := range orphans {
				dir := filepath.Join(root, fmt.Sprintf("orphan-%d", o))
				buildOrphanTree(b, dir, uint64(i*orphans+o), files)
				makeVM(b, dir, orphanState())
			}
			syscall.Sync()
			b.StartTimer()
			start, c0 := time.Now(), cpuTime()
			for range 5 {
				cands, err := ScanContext(ctx, root, opt)
				if err != nil || len(cands) != kept+orphans {
					b.Fatalf("%s: Scan: %d candidates, %v", variants[v].name, len(cands), err)
				}
			}
			took[v].scan, took[v].scanCPU = time.Since(start)/5, (cpuTime()-c0)/5
			start = time.Now()
			rep, err := CollectContext(ctx, root, opt)
			took[v].collect = time.Since(start)
			if err != nil || len(rep.Reclaimed) != orphans || len(rep.Kept) != kept {
				b.Fatalf("%s: Collect: %d reclaimed, %d kept, %v", variants[v].name, len(rep.Reclaimed), len(rep.Kept), err)
			}
			start, c0 = time.Now(), cpuTime()
			for range 5 {
				rep, err := CollectContext(ctx, root, opt, WithBudget(DefaultCreateBudget))
				if err != nil || len(rep.Reclaimed) != 0 || len(rep.Kept) != kept {
					b.Fatalf("%s: claim collection: %+v, %v", variants[v].name, rep, err)
				}
			}
			took[v].claim, took[v].claimCPU = time.Since(start)/5, (cpuTime()-c0)/5
		}
		for v := range variants {
			total[v].scan += took[v].scan
			total[v].collect += took[v].collect
			total[v].claim += took[v].claim
			ratios[0][v] = append(ratios[0][v], float64(took[v].scan)/float64(took[0].scan))
			ratios[1][v] = append(ratios[1][v], float64(took[v].collect)/float64(took[0].collect))
			ratios[2][v] = append(ratios[2][v], float64(took[v].claim)/float64(took[0].claim))
			ratios[3][v] = append(ratios[3][v], float64(took[v].scanCPU)/float64(took[0].scanCPU))
			ratios[4][v] = append(ratios[4][v], float64(took[v].claimCPU)/float64(took[0].claimCPU))
		}
		i++
	}
	median := func(r []float64) float64 { slices.Sort(r); return r[len(r)/2] }
	per := func(d time.Duration) time.Duration { return d / time.Duration(i) }
	b.Logf("all on: Scan %v, Collect %v, claim collection %v (means of %d)", per(total[0].scan), per(total[0].collect), per(total[0].claim), i)
	for v := 1; v < len(variants); v++ {
		name := variants[v].name
		s, c, cl := median(ratios[0][v]), median(ratios[1][v]), median(ratios[2][v])
		b.ReportMetric(s, "x_scan_"+name+"_off")
		b.ReportMetric(c, "x_collect_"+name+"_off")
		b.ReportMetric(cl, "x_claim_"+name+"_off")
		b.ReportMetric(median(ratios[3][v]), "x_scan_cpu_"+name+"_off")
		b.ReportMetric(median(ratios[4][v]), "x_claim_cpu_"+name+"_off")
		b.Logf("%s off: Scan %v (median off/on %.2fx), Collect %v (%.2fx), claim collection %v (%.2fx)", name,
			per(total[v].scan), s, per(total[v].collect), c, per(total[v].claim), cl)
	}
}
