// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Environment of a helper process: the test binary re-executed with
// GO_WANT_HELPER_PROCESS=1 runs the mode named by STRESS_HELPER instead of
// the tests.
const (
	envWantHelper = "GO_WANT_HELPER_PROCESS"
	envHelperMode = "STRESS_HELPER"
	envRoot       = "STRESS_ROOT"
	envDeadline   = "STRESS_DEADLINE" // Unix nanoseconds
	envRunner     = "STRESS_RUNNER"   // path of the stand-in runner
	envEvents     = "STRESS_EVENTS"   // event log of an embedder
	envWorker     = "STRESS_WORKER"   // worker name (prefix of its data dirs)
	envTarget     = "STRESS_TARGET"   // data directory of hold-lease / hold-lock
)

func TestMain(m *testing.M) {
	if os.Getenv(envWantHelper) == "1" {
		os.Exit(runHelper(os.Getenv(envHelperMode)))
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// runHelper dispatches a helper process to its mode and returns its exit code.
func runHelper(mode string) int {
	switch mode {
	case "collect":
		return helperCollect()
	case "collect-loop":
		return helperCollectLoop()
	case "embedder":
		return helperEmbedder()
	case "hold-lease":
		return helperHold(true)
	case "hold-lock":
		return helperHold(false)
	}
	fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
	return 2
}

// helperCmd returns a command re-executing the test binary in mode.
func helperCmd(mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envWantHelper+"=1", envHelperMode+"="+mode)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// envInt reads an integer knob.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// envDuration reads a duration knob.
func envDuration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// newRand returns the test's random source, seeded from STRESS_SEED or the
// clock, and logs the seed so a failing run can be replayed.
func newRand(t testing.TB) (*rand.Rand, uint64) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("STRESS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("STRESS_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("STRESS_SEED=%d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed
}

var (
	binDir   string
	binMu    sync.Mutex
	binBuilt = map[string]string{}
)

// buildBinary builds the main package pkg (an import path of this module)
// once per test run into a private directory under the name base, and
// returns the path of the executable.
func buildBinary(t testing.TB, pkg, base string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binBuilt[pkg]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "stress-bin-")
		if err != nil {
			t.Fatalf("make binary dir: %v", err)
		}
		binDir = d
	}
	out := filepath.Join(binDir, pkg[len(modulePath)+1:], base)
	// The go command that runs this test is on PATH (.ci/run sees to it).
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("find the go command to build %s: %v", pkg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	binBuilt[pkg] = out
	return out
}

const modulePath = "github.com/stacklok/go-microvm"

// standinPath returns the stand-in runner, built under the released runner
// executable name so the identity rules see a runner.
func standinPath(t testing.TB) string {
	return buildBinary(t, modulePath+"/internal/cmd/go-microvm-runner", "go-microvm-runner")
}

// gcToolPath returns the go-microvm-gc command.
func gcToolPath(t testing.TB) string {
	return buildBinary(t, modulePath+"/cmd/go-microvm-gc", "go-microvm-gc")
}
