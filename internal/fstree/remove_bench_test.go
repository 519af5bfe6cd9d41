// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
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
			res, err := Options{}.RemoveAt(context.Background(), parent, filepath.Base(a), a)
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
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// buildSmallTree creates dirs directories of files files of 1–2 KiB each
// below root.
func buildSmallTree(b *testing.B, root string, dirs, files int) {
	data := make([]byte, 2048)
	for d := range dirs {
		dir := filepath.Join(root, fmt.Sprintf("d%04d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range files {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", f)), data[:1024+(d*files+f)%1024], 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// removeCounted is the floor of a removal that accounts for the bytes it
// frees: the tree of buildSmallTree, removed with one lstat and one unlink
// per file and nothing else (no mount, symlink-swap or hard-link checks).
// It returns the bytes freed.
func removeCounted(b *testing.B, root string) int64 {
	top, err := os.Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer top.Close()
	dirs, err := top.Readdirnames(-1)
	if err != nil {
		b.Fatal(err)
	}
	var freed int64
	for _, d := range dirs {
		dir, err := os.Open(filepath.Join(root, d))
		if err != nil {
			b.Fatal(err)
		}
		names, err := dir.Readdirnames(-1)
		if err != nil {
			b.Fatal(err)
		}
		fd := int(dir.Fd())
		var st unix.Stat_t
		for _, name := range names {
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				b.Fatal(err)
			}
			if err := unix.Unlinkat(fd, name, 0); err != nil {
				b.Fatal(err)
			}
			freed += st.Blocks * 512
		}
		dir.Close()
		if err := unix.Unlinkat(int(top.Fd()), d, unix.AT_REMOVEDIR); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Remove(root); err != nil {
		b.Fatal(err)
	}
	return freed
}

// BenchmarkRemoveCPU compares the CPU time (user + system) of RemoveAt with Go's os.RemoveAll, and with the floor of a removal that
// counts what it frees (removeCounted: one lstat and one unlink per file),
// on identical trees of small files built in the same iteration
// (FSTREE_BENCH_FILES files, 100,000 by default, 1,000 to a directory)
// below FSTREE_BENCH_DIR (default the test's temporary directory; /dev/shm
// takes the disk out), in an order that rotates. x_removeall_cpu is
// RemoveAt's CPU over os.RemoveAll's (goal: at most 1.0);
// x_counted_floor_cpu is RemoveAt's over the floor's.
func BenchmarkRemoveCPU(b *testing.B) {
	files := 100000
	if s := os.Getenv("FSTREE_BENCH_FILES"); s != "" {
		if _, err := fmt.Sscanf(s, "%d", &files); err != nil || files < 1000 {
			b.Fatalf("FSTREE_BENCH_FILES=%q: want a number of at least 1000", s)
		}
	}
	base := os.Getenv("FSTREE_BENCH_DIR")
	if base == "" {
		base = b.TempDir()
	}
	tmp, err := os.MkdirTemp(base, "fstree-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(tmp) })
	const perDir = 1000
	dirs := files / perDir
	var ours, theirs, floor time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		a := filepath.Join(tmp, fmt.Sprint("a", i))
		c := filepath.Join(tmp, fmt.Sprint("c", i))
		f := filepath.Join(tmp, fmt.Sprint("f", i))
		buildSmallTree(b, a, dirs, perDir)
		buildSmallTree(b, c, dirs, perDir)
		buildSmallTree(b, f, dirs, perDir)
		parent, err := os.Open(tmp)
		if err != nil {
			b.Fatal(err)
		}
		unix.Sync()
		runOurs := func() {
			b.StartTimer()
			c0 := cpuTime()
			res, err := Options{}.RemoveAt(context.Background(), parent, filepath.Base(a), a)
			ours += cpuTime() - c0
			b.StopTimer()
			if err != nil || res.Files != int64(dirs*perDir) {
				b.Fatalf("RemoveAt = %+v, %v", res, err)
			}
		}
		runGo := func() {
			c0 := cpuTime()
			if err := os.RemoveAll(c); err != nil {
				b.Fatal(err)
			}
			theirs += cpuTime() - c0
		}
		runFloor := func() {
			c0 := cpuTime()
			removeCounted(b, f)
			floor += cpuTime() - c0
		}
		runs := []func(){runOurs, runGo, runFloor}
		for j := range runs {
			runs[(i+j)%len(runs)]()
		}
		parent.Close()
		i++
		b.StartTimer()
	}
	n := float64(i) * float64(dirs*perDir)
	ratio := float64(ours) / float64(theirs)
	b.ReportMetric(float64(ours.Nanoseconds())/n, "cpu-ns/file")
	b.ReportMetric(float64(theirs.Nanoseconds())/n, "removeall-cpu-ns/file")
	b.ReportMetric(float64(floor.Nanoseconds())/n, "counted-floor-cpu-ns/file")
	b.ReportMetric(ratio, "x_removeall_cpu")
	b.ReportMetric(float64(ours)/float64(floor), "x_counted_floor_cpu")
	b.Logf("%d files: RemoveAt %.2f µs CPU per file, os.RemoveAll %.2f µs: %.2fx (goal ≤ 1.0x); "+
		"lstat+unlink floor %.2f µs: %.2fx",
		dirs*perDir, float64(ours.Nanoseconds())/n/1e3, float64(theirs.Nanoseconds())/n/1e3, ratio,
		float64(floor.Nanoseconds())/n/1e3, float64(ours)/float64(floor))
}

// buildRootfs creates below root a tree shaped like a VM's rootfs-work
// with files files: nested directories (at most 6 deep) of 5 to 30
// entries, mostly small files (65% up to 1 KiB, 30% up to 8 KiB, 5% up to
// 32 KiB) and one symlink in twenty.
func buildRootfs(b *testing.B, root string, seed uint64, files int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, 32<<10)
	type dir struct {
		path  string
		depth int
	}
	queue := []dir{{root, 0}}
	if err := os.Mkdir(root, 0o755); err != nil {
		b.Fatal(err)
	}
	for n, extra := 0, 0; n < files; {
		if len(queue) == 0 {
			queue = append(queue, dir{filepath.Join(root, fmt.Sprint("extra", extra)), 1})
			extra++
			if err := os.Mkdir(queue[0].path, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		d := queue[0]
		queue = queue[1:]
		for k := min(files-n, 5+rng.IntN(26)); k > 0; k-- {
			p := filepath.Join(d.path, fmt.Sprint("f", n))
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
		for k := 1 + rng.IntN(4); d.depth < 6 && k > 0; k-- {
			p := filepath.Join(d.path, fmt.Sprint("d", n, "-", k))
			if err := os.Mkdir(p, 0o755); err != nil {
				b.Fatal(err)
			}
			queue = append(queue, dir{p, d.depth + 1})
		}
	}
}

// BenchmarkInUseAtVsRemoveAt times the look through an orphan tree of
// 20,000 files (buildRootfs, FSTREE_BENCH_ORPHAN_FILES to change) for
// nested data directories (InUseAt, directories only) against the removal
// of the same tree right after it, as package gc does before it moves an
// orphan's rootfs-work into the trash. ns/op is InUseAt's time; x_remove
// is InUseAt's total time over RemoveAt's.
//
//	go test -run '^$' -bench InUseAtVsRemoveAt -benchtime 5x ./internal/fstree/
func BenchmarkInUseAtVsRemoveAt(b *testing.B) {
	files := 20000
	if s := os.Getenv("FSTREE_BENCH_ORPHAN_FILES"); s != "" {
		if _, err := fmt.Sscanf(s, "%d", &files); err != nil {
			b.Fatalf("FSTREE_BENCH_ORPHAN_FILES=%q: %v", s, err)
		}
	}
	o := Options{InUseMarker: "go-microvm-state.json", InUse: func(int, string) string { return "" }}
	tmp := b.TempDir()
	parent, err := os.Open(tmp)
	if err != nil {
		b.Fatal(err)
	}
	defer parent.Close()
	var look, remove time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprint("t", i)
		buildRootfs(b, filepath.Join(tmp, name), uint64(i), files)
		unix.Sync()
		b.StartTimer()
		start := time.Now()
		res, err := o.InUseAt(context.Background(), parent, name, name)
		look += time.Since(start)
		b.StopTimer()
		if err != nil || len(res.InUse) > 0 {
			b.Fatalf("InUseAt = %+v, %v", res, err)
		}
		start = time.Now()
		if res, err := o.RemoveAt(context.Background(), parent, name, name); err != nil || res.Files != int64(files) {
			b.Fatalf("RemoveAt = %+v, %v", res, err)
		}
		remove += time.Since(start)
	}
	b.ReportMetric(float64(look)/float64(remove), "x_remove")
	b.Logf("%d files: InUseAt %v, RemoveAt %v over %d runs", files, look, remove, b.N)
}
