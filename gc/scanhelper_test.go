// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// helperScan is the helper process of BenchmarkScanPeakMemory: it scans
// root and writes each candidate as a line of JSON to stdout, streaming
// (mode "scan-stream", ScanSeq) or all at the end (mode "scan-slice",
// Scan).
func helperScan(mode, root string) int {
	w := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(w)
	n := 0
	switch mode {
	case "scan-stream":
		for c, err := range ScanSeq(context.Background(), root) {
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			_ = enc.Encode(&c)
			n++
		}
	default:
		cands, err := Scan(root)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for i := range cands {
			_ = enc.Encode(&cands[i])
			n++
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// The peak of this program alone: the rusage a parent reads would
	// also count the parent's pages, shared until the exec.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for line := range strings.Lines(string(status)) {
		if strings.HasPrefix(line, "VmHWM:") {
			fmt.Fprintf(os.Stderr, "%d candidates\n%s", n, line)
		}
	}
	return 0
}
