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
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/state"
)

// listMemGoalMB is issue 6's goal for the peak memory of
// `go-microvm-gc list` over 10,000 data directories.
const listMemGoalMB = 50

// layDataDirs lays n data directories under root, as an embedder with n
// VMs would have them: a state file and a small rootfs-work each; most
// cleanly stopped, a tenth orphans by the marker, a tenth active with a
// dead runner, so every classification path is taken. The state files are
// written directly (no fsync), which is what makes 10,000 of them quick.
func layDataDirs(t testing.TB, root string, n int) {
	t.Helper()
	dead := deadPID(t)
	now := time.Now()
	for i := 0; i < n; i++ {
		dir := filepath.Join(root, fmt.Sprintf("vm-%05d", i))
		if err := os.MkdirAll(filepath.Join(dir, "rootfs-work", "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rootfs-work", "etc", "hostname"), []byte("vm\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s := state.State{
			Version:   state.CurrentVersion,
			Name:      fmt.Sprintf("vm-%05d", i),
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
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, state.FileName), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var maxRSSLine = regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`)

// peakRSS runs tool with args and returns its peak resident set size in MB
// (10^6 bytes), read from /usr/bin/time -v where it exists, else from the
// child's rusage, which is the same kernel figure.
func peakRSS(t testing.TB, tool string, args ...string) float64 {
	t.Helper()
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		var stderr bytes.Buffer
		cmd := exec.Command("/usr/bin/time", append([]string{"-v", tool}, args...)...)
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %v: %v\n%s", tool, args, err, stderr.String())
		}
		m := maxRSSLine.FindSubmatch(stderr.Bytes())
		if m == nil {
			t.Fatalf("no peak RSS in /usr/bin/time output:\n%s", stderr.String())
		}
		kb, _ := strconv.ParseFloat(string(m[1]), 64)
		return kb * 1024 / 1e6
	}
	var stderr bytes.Buffer
	cmd := exec.Command(tool, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, stderr.String())
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatalf("no rusage for %s", tool)
	}
	return float64(ru.Maxrss) * 1024 / 1e6 // Linux: kilobytes
}

// BenchmarkListPeakMemory measures the peak memory of `go-microvm-gc list`
// (table and --json) over 10,000 data directories, against the same
// command over an empty root in the same run, and the 50 MB goal.
func BenchmarkListPeakMemory(b *testing.B) {
	tool := gcToolPath(b)
	root := filepath.Join(b.TempDir(), "root")
	layDataDirs(b, root, 10000)
	empty := b.TempDir()
	emptyMB := peakRSS(b, tool, "list", "--root", empty)
	var tableMB, jsonMB float64
	for b.Loop() {
		tableMB = max(tableMB, peakRSS(b, tool, "list", "--root", root))
		jsonMB = max(jsonMB, peakRSS(b, tool, "list", "--json", "--root", root))
	}
	b.ReportMetric(tableMB, "peak-MB")
	b.ReportMetric(jsonMB, "json-peak-MB")
	b.ReportMetric(emptyMB, "empty-root-MB")
	b.ReportMetric(max(tableMB, jsonMB)/listMemGoalMB, "x-goal")
	b.Logf("go-microvm-gc list over 10,000 data dirs: peak %.1f MB (table), %.1f MB (--json); empty root %.1f MB; goal %d MB: %.2fx",
		tableMB, jsonMB, emptyMB, listMemGoalMB, max(tableMB, jsonMB)/listMemGoalMB)
}
