// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchTree reads the benchmark tree shape from FSTREE_BENCH_TREE as
// "TOPxDIRSxFILES": TOP directories holding DIRS directories holding FILES
// files of 4–16 KiB each. The default is small so that a plain -bench run
// stays quick; "20x50x20" is about 200 MB and 20,000 files.
func benchTree(b *testing.B) (top, dirs, files int) {
	top, dirs, files = 4, 10, 20
	if s := os.Getenv("FSTREE_BENCH_TREE"); s != "" {
		if _, err := fmt.Sscanf(s, "%dx%dx%d", &top, &dirs, &files); err != nil {
			b.Fatalf("FSTREE_BENCH_TREE=%q: want TOPxDIRSxFILES: %v", s, err)
		}
	}
	return top, dirs, files
}

// buildBenchTree creates the same tree at root for the same seed.
func buildBenchTree(b *testing.B, root string, seed uint64, top, dirs, files int) {
	rng := rand.New(rand.NewPCG(seed, seed))
	data := make([]byte, 16<<10)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for i := range top {
		for j := range dirs {
			d := filepath.Join(root, fmt.Sprintf("top%02d", i), fmt.Sprintf("dir%03d", j))
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
			for k := range files {
				size := 4<<10 + rng.IntN(12<<10+1)
				if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("file%03d", k)), data[:size], 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// BenchmarkRemoveVsRmRf times RemoveAt against `rm -rf` on identical trees
// built (untimed, and flushed to disk) in the same iteration, alternating
// which goes first. ns/op is RemoveAt's time; x_rm_rf is RemoveAt's total
// time over rm -rf's.
//
//	FSTREE_BENCH_TREE=20x50x20 go test -run '^$' -bench RemoveVsRmRf -benchtime 5x ./internal/fstree/
func BenchmarkRemoveVsRmRf(b *testing.B) {
	rm, err := exec.LookPath("rm")
	if err != nil {
		b.Skip("no rm")
	}
	top, dirs, files := benchTree(b)
	for _, o := range []Options{{Workers: 1}, {}} {
		b.Run(fmt.Sprintf("workers=%d", o.workers()), func(b *testing.B) {
			tmp := b.TempDir()
			var ours, theirs time.Duration
			var ratios []float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				a := filepath.Join(tmp, fmt.Sprint("a", i))
				c := filepath.Join(tmp, fmt.Sprint("c", i))
				buildBenchTree(b, a, uint64(i), top, dirs, files)
				buildBenchTree(b, c, uint64(i), top, dirs, files)
				parent, err := os.Open(tmp)
				if err != nil {
					b.Fatal(err)
				}
				// Neither remover should get to drop dirty pages unwritten.
				unix.Sync()
				runOurs := func() {
					b.StartTimer()
					start := time.Now()
					res, err := o.RemoveAt(context.Background(), parent, filepath.Base(a), a)
					d := time.Since(start)
					b.StopTimer()
					if err != nil || res.Files != int64(top*dirs*files) {
						b.Fatalf("RemoveAt = %+v, %v", res, err)
					}
					ours += d
				}
				runRm := func() time.Duration {
					start := time.Now()
					if out, err := exec.Command(rm, "-rf", "--", c).CombinedOutput(); err != nil {
						b.Fatalf("rm -rf: %v: %s", err, out)
					}
					return time.Since(start)
				}
				before := ours
				var dRm time.Duration
				if i%2 == 0 {
					runOurs()
					dRm = runRm()
				} else {
					dRm = runRm()
					runOurs()
				}
				theirs += dRm
				ratios = append(ratios, float64(ours-before)/float64(dRm))
				parent.Close()
			}
			slices.Sort(ratios)
			ratio := float64(ours) / float64(theirs)
			b.ReportMetric(ratio, "x_rm_rf")
			b.ReportMetric(ratios[len(ratios)/2], "median_x_rm_rf")
			b.Logf("%d files: RemoveAt %v, rm -rf %v over %d runs: %.2fx (median %.2fx)",
				top*dirs*files, ours, theirs, b.N, ratio, ratios[len(ratios)/2])
		})
	}
}
