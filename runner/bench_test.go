// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// liveDirs is how many live data directories the benchmark root holds.
const liveDirs = 100

// BenchmarkClaimCollect measures the collection NewClaim runs, over a root
// of live data directories with nothing to reclaim, against one fork+exec
// of /bin/true (floor, docs/BENCHMARKS.md: at most 1.5×), and against a bare
// gc.CollectContext with the same options, to show that the runner adds
// nothing to the collection. Each iteration times one of each, one after
// the other, and the ratios are of the medians, so that a load that comes
// and goes weighs on both alike.
func BenchmarkClaimCollect(b *testing.B) {
	root := liveRoot(b)
	o := newOptions(nil)
	ctx := context.Background()
	gopts := []gc.Option{gc.WithBudget(o.collectBudget), gc.WithLogger(o.logger)}
	rep, err := gc.CollectContext(ctx, root, gopts...)
	if err != nil || len(rep.Reclaimed) != 0 || len(rep.Kept) != liveDirs {
		b.Fatalf("collection over %d live dirs: err %v, report %+v", liveDirs, err, rep)
	}
	claimCollect := collectBefore(root, o)
	var forks, bares, collects []time.Duration
	for b.Loop() {
		b.StopTimer()
		forks = append(forks, forkExec(b))
		start := time.Now()
		if _, err := gc.CollectContext(ctx, root, gopts...); err != nil {
			b.Fatal(err)
		}
		bares = append(bares, time.Since(start))
		b.StartTimer()
		start = time.Now()
		if err := claimCollect(ctx); err != nil {
			b.Fatal(err)
		}
		collects = append(collects, time.Since(start))
	}
	fork, bare, coll := median(forks), median(bares), median(collects)
	b.ReportMetric(float64(fork.Nanoseconds()), "forkexec-ns")
	b.ReportMetric(float64(coll)/float64(fork), "x-forkexec")
	b.ReportMetric(float64(coll)/float64(bare), "x-bare-gc")
	b.Logf("claim collection over %d live dirs: %v; fork+exec /bin/true: %v; ratio %.2f× (floor ≤ 1.5×); bare gc.CollectContext %v (%.2f×); medians of %d",
		liveDirs, coll, fork, float64(coll)/float64(fork), bare, float64(coll)/float64(bare), len(forks))
}

// BenchmarkClaim measures a whole runner.NewClaim (the collection, the data
// directory's creation, the lease and the durable save of the run marker)
// of a new data directory beside liveDirs live ones, collecting over their
// root (WithCollectRoot, as an embedder with one root for all its VMs
// does; the default collects over the new directory only), against one
// fork+exec
// of /bin/true timed in the same iteration; the ratio is of the medians.
// Each claimed directory is aborted and removed outside the timing.
func BenchmarkClaim(b *testing.B) {
	root := liveRoot(b)
	ctx := context.Background()
	var forks, claims, saves []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		forks = append(forks, forkExec(b))
		saves = append(saves, durableSave(b, root))
		dir := filepath.Join(root, fmt.Sprintf("new-%06d", i))
		i++
		b.StartTimer()
		start := time.Now()
		c, err := NewClaim(ctx, dir, WithCollectRoot(root))
		claims = append(claims, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := c.Abort(); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	fork, claim, save := median(forks), median(claims), median(saves)
	b.ReportMetric(float64(fork.Nanoseconds()), "forkexec-ns")
	b.ReportMetric(float64(claim)/float64(fork), "x-forkexec")
	b.ReportMetric(float64(save)/float64(fork), "save-x-forkexec")
	b.Logf("NewClaim beside %d live dirs: %v; fork+exec /bin/true: %v; ratio %.2f×; one durable save alone (write, fsync, rename, fsync dir): %v (%.2f×); medians of %d",
		liveDirs, claim, fork, float64(claim)/float64(fork), save, float64(save)/float64(fork), len(forks))
}

// durableSave times the least a durable atomic save of a small file costs
// in dir: write a temporary file, fsync it, rename it, fsync dir. It is
// the floor of the run marker's save.
func durableSave(b *testing.B, dir string) time.Duration {
	start := time.Now()
	f, err := os.CreateTemp(dir, "save-*.tmp")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Write([]byte(`{"version":1,"leased":true}`)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	final := filepath.Join(dir, ".save-floor")
	if err := os.Rename(f.Name(), final); err != nil {
		b.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	d.Close()
	took := time.Since(start)
	os.Remove(final)
	return took
}

// forkExec times one fork+exec+wait of /bin/true.
func forkExec(b *testing.B) time.Duration {
	start := time.Now()
	if err := exec.Command("/bin/true").Run(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// median returns the median of ds (which it sorts).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// liveRoot returns a root holding liveDirs data directories of live runs:
// the lease held (by this process: a held lease is a held lease, whichever
// process holds it) and the marker set, with this process's identity.
func liveRoot(b *testing.B) string {
	root := b.TempDir()
	self, err := procinfo.Lookup(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	boot, _ := procinfo.BootID()
	for i := range liveDirs {
		dir := filepath.Join(root, fmt.Sprintf("vm-%03d", i))
		if err := makeRootfs(dir); err != nil {
			b.Fatal(err)
		}
		ls, err := state.NewManager(dir).LoadAndLock(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		ls.Active, ls.Leased, ls.PID, ls.PIDStartTime = true, true, self.PID, time.Now()
		ls.Runner = &state.Identity{StartTime: self.StartTime, BootID: boot, Executable: self.Executable}
		if err := ls.Save(); err != nil {
			b.Fatal(err)
		}
		_ = ls.Close()
		// A held lease is a held lease, whichever process holds it.
		lease, err := state.TryLease(dir)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = lease.Close() })
	}
	return root
}
