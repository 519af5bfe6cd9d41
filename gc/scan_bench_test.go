// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package gc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// scanBenchDirs is the root size of BenchmarkScanCPU: 10,000 unless
// GC_BENCH_DIRS says otherwise (make bench sets 100000).
func scanBenchDirs(b *testing.B) int {
	n := 10000
	if s := os.Getenv("GC_BENCH_DIRS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("GC_BENCH_DIRS=%q: want a positive integer", s)
		}
		n = v
	}
	return n
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// floorScan is the least a scan can do per data directory: list root,
// open each directory, probe its lease and its state lock, and read its
// state file, one directory after the other, with nothing decided and
// nothing allocated per directory.
func floorScan(b *testing.B, root string) int {
	f, err := os.Open(root)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	rfd := int(f.Fd())
	names, err := f.Readdirnames(-1)
	if err != nil {
		b.Fatal(err)
	}
	probe := func(fd int) {
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == nil {
			_ = unix.Flock(fd, unix.LOCK_UN)
		} else if !errors.Is(err, unix.EWOULDBLOCK) {
			b.Fatal(err)
		}
	}
	buf := make([]byte, state.MaxFileSize+1)
	read := 0
	for _, name := range names {
		dfd, err := unix.Openat(rfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		probe(dfd)
		if lfd, err := unix.Openat(dfd, state.LockFileName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			probe(lfd)
			unix.Close(lfd)
		}
		sfd, err := unix.Openat(dfd, state.FileName, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := unix.Read(sfd, buf); err != nil || n == 0 {
			b.Fatalf("read state of %s: %d, %v", name, n, err)
		}
		unix.Close(sfd)
		unix.Close(dfd)
		read++
	}
	return read
}

// BenchmarkScanCPU measures the CPU time (user + system) per data
// directory of Scan (what `go-microvm-gc list` runs) over a root of
// GC_BENCH_DIRS directories, against floorScan over the same root in the
// same iterations. Goals: at most 40 µs per directory, and at
// most 1.5× the floor.
func BenchmarkScanCPU(b *testing.B) {
	n := scanBenchDirs(b)
	root, _ := benchRoot(b, n)
	ctx := context.Background()
	var ours, floor, wallOurs time.Duration
	for b.Loop() {
		b.StopTimer()
		c0 := cpuTime()
		if got := floorScan(b, root); got != n {
			b.Fatalf("floor read %d state files, want %d", got, n)
		}
		floor += cpuTime() - c0
		b.StartTimer()

		c0, w0 := cpuTime(), time.Now()
		cands, err := ScanContext(ctx, root)
		ours += cpuTime() - c0
		wallOurs += time.Since(w0)
		if err != nil || len(cands) != n {
			b.Fatalf("Scan: %d candidates, want %d: %v", len(cands), n, err)
		}
	}
	per := float64(ours.Nanoseconds()) / float64(b.N) / float64(n) / 1e3
	floorPer := float64(floor.Nanoseconds()) / float64(b.N) / float64(n) / 1e3
	b.ReportMetric(per, "cpu-µs/dir")
	b.ReportMetric(floorPer, "floor-cpu-µs/dir")
	b.ReportMetric(per/floorPer, "x_floor_cpu")
	b.Logf("Scan over %d dirs: %.1f µs CPU per dir (goal ≤ 40), floor %.1f µs: %.2f× (goal ≤ 1.5×); wall %.1f µs per dir",
		n, per, floorPer, per/floorPer, float64(wallOurs.Nanoseconds())/float64(b.N)/float64(n)/1e3)
}

// scanUsage runs helperScan in mode over root and returns its peak
// resident set size in MB (its own VmHWM) and its CPU time.
func scanUsage(b *testing.B, mode, root string) (peakMB float64, cpu time.Duration) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	cmd := testproc.Command(mode, root)
	cmd.Stdout = devnull
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", mode, err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	var kb float64
	if _, err := fmt.Sscanf(stderr.String()[strings.Index(stderr.String(), "VmHWM:"):], "VmHWM: %f kB", &kb); err != nil {
		b.Fatalf("%s: no VmHWM in %q: %v", mode, stderr.String(), err)
	}
	return kb * 1024 / 1e6, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScanPeakMemory measures the peak memory of a process that scans
// a root of GC_BENCH_DIRS data directories (10,000 by default; make bench
// sets 100000, and 1000000 once for the record) and writes each candidate
// as JSON, with ScanSeq (streaming) and with Scan (every candidate held),
// in the same run, with their CPU time per directory. Goal: at
// most 30 MB at 100,000 directories, and flat: at 1,000,000 at most 1.5×
// the figure at 100,000.
func BenchmarkScanPeakMemory(b *testing.B) {
	n := scanBenchDirs(b)
	root, _ := benchRoot(b, n)
	var streamMB, sliceMB float64
	var streamCPU, sliceCPU time.Duration
	for b.Loop() {
		streamMB, streamCPU = scanUsage(b, "scan-stream", root)
		sliceMB, sliceCPU = scanUsage(b, "scan-slice", root)
	}
	b.ReportMetric(streamMB, "stream-peak-MB")
	b.ReportMetric(sliceMB, "slice-peak-MB")
	b.ReportMetric(float64(streamCPU.Nanoseconds())/float64(n)/1e3, "stream-cpu-µs/dir")
	b.Logf("scan of %d dirs written as JSON lines: peak %.1f MB streaming (ScanSeq), %.1f MB holding all (Scan); CPU %.1f / %.1f µs per dir",
		n, streamMB, sliceMB, float64(streamCPU.Nanoseconds())/float64(n)/1e3, float64(sliceCPU.Nanoseconds())/float64(n)/1e3)
}
