// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/testproc"
)

// Environment of a helper process (the test binary re-executed as a
// helper through package testproc).
const (
	envRoot     = "STRESS_ROOT"
	envDeadline = "STRESS_DEADLINE" // Unix nanoseconds
	envRunner   = "STRESS_RUNNER"   // path of the stand-in runner
	envEvents   = "STRESS_EVENTS"   // event log of an embedder
	envWorker   = "STRESS_WORKER"   // worker name (prefix of its data dirs)
	envTarget   = "STRESS_TARGET"   // data directory of hold-lease / hold-lock
)

// helperModes are the helpers the tests start.
var helperModes = []string{"collect", "collect-loop", "embedder", "creator", "hold-lease", "hold-lock"}

// helperMode is the mode this process runs as a helper ("" in the tests).
var helperMode string

func TestMain(m *testing.M) {
	for _, mode := range helperModes {
		testproc.Register(mode, func([]string) int {
			helperMode = mode
			return runHelper(mode)
		})
	}
	testproc.Main(m)
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
	case "creator":
		return helperCreator()
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
	cmd := testproc.Command(mode)
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

// buildBinary builds the main package pkg (an import path of this module)
// once per test run under the name base (see testproc.Build), and returns
// the path of the executable.
func buildBinary(t testing.TB, pkg, base string) string {
	t.Helper()
	p, err := testproc.Build(pkg, base)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const modulePath = "github.com/stacklok/go-microvm"

// standinPath returns the stand-in runner, built under the released runner
// executable name so the identity rules see a runner.
func standinPath(t testing.TB) string {
	return buildBinary(t, testproc.RunnerPackage, testproc.RunnerName)
}

// gcToolPath returns the go-microvm-gc command.
func gcToolPath(t testing.TB) string {
	return buildBinary(t, modulePath+"/cmd/go-microvm-gc", "go-microvm-gc")
}
