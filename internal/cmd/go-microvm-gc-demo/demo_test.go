// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/runner"
)

func TestMain(m *testing.M) { testproc.Main(m) }

// TestDemo runs the demo: the real go-microvm-gc, real stand-in runners,
// real SIGKILLs, real files. The demo checks its own expectations and
// returns 0 only when all of them held. The executables are built first,
// before the guard starts: a cold build cache takes minutes on a busy
// machine.
func TestDemo(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("the demo starts real processes and writes about 40 MB")
	}
	// The executables come from testproc's build cache, which other test
	// binaries of the run share, linked into the directory the demo reads.
	bin := t.TempDir()
	for pkg, name := range map[string]string{gcPkg: "go-microvm-gc", standinPkg: runner.RunnerName, demoHelperPkg: "demohelper"} {
		exe, err := testproc.Build(pkg, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(exe, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	out := &lockedBuffer{}
	d := &demo{out: out, errOut: out, bin: bin, tmpParent: t.TempDir()}
	done := make(chan int, 1)
	go func() { done <- d.run(context.Background(), false) }()
	select {
	case code := <-done:
		t.Logf("demo output:\n%s", out.String())
		if code != 0 {
			t.Fatalf("demo returned %d, want 0", code)
		}
		if !strings.Contains(out.String(), "PASS: all") || strings.Contains(out.String(), "FAIL") {
			t.Fatalf("demo did not report every expectation as held")
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("demo has not finished after 2 minutes")
	}
}

// lockedBuffer is the demo's output and errors, written by it and by the
// commands it runs at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
