// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/runner"
)

// TestDemo runs the demo in-process: real stand-in runners, real SIGKILLs,
// real files. The demo checks its own expectations and exits 0 only when
// all of them held. Its helpers are built first, before the guard starts:
// a cold build cache takes minutes on a busy machine.
func TestDemo(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("the demo starts real processes and writes about 40 MB")
	}
	// The helpers come from testproc's build cache, which other test
	// binaries of the run share, linked into the directory the demo reads.
	bin := t.TempDir()
	for pkg, name := range map[string]string{standinPkg: runner.RunnerName, demoHelperPkg: "demohelper"} {
		exe, err := testproc.Build(pkg, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(exe, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	a := newApp(context.Background(), strings.NewReader(""), &out, &out)
	a.demoBin = bin
	a.demoTmp = t.TempDir()
	done := make(chan int, 1)
	go func() { done <- a.execute([]string{"demo"}) }()
	select {
	case code := <-done:
		t.Logf("demo output:\n%s", out.String())
		if code != exitOK {
			t.Fatalf("demo exited with %d, want 0", code)
		}
		if !strings.Contains(out.String(), "PASS: all") || strings.Contains(out.String(), "FAIL") {
			t.Fatalf("demo did not report every expectation as held")
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("demo has not finished after 2 minutes")
	}
}
