// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"os"
	"testing"
	"time"
)

// BenchmarkLookup looks up a live process (this one) and a PID no process
// has, against the floor of one read of /proc/self/stat measured in the
// same iterations; x_floor is the ratio.
func BenchmarkLookup(b *testing.B) {
	for _, c := range []struct {
		name string
		pid  int
	}{{"live", os.Getpid()}, {"dead", 1 << 30}} {
		b.Run(c.name, func(b *testing.B) {
			var floor, ours time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := os.ReadFile("/proc/self/stat"); err != nil {
					b.Fatal(err)
				}
				floor += time.Since(start)
				start = time.Now()
				_, _ = Lookup(c.pid)
				ours += time.Since(start)
			}
			b.ReportMetric(float64(ours)/float64(floor), "x_floor")
		})
	}
}

// BenchmarkFindNested looks at every process for a PID in nested
// namespaces, as a collector does before it reclaims a released record;
// procs is the number of processes looked at.
func BenchmarkFindNested(b *testing.B) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	procs := 0
	for _, e := range entries {
		if e.Name()[0] >= '0' && e.Name()[0] <= '9' {
			procs++
		}
	}
	for b.Loop() {
		if _, err := FindNested(os.Getpid()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(procs), "procs")
}
