// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Command demohelper is a process that go-microvm-gc-demo builds from
// source and starts.
//
//	demohelper embedder DIR   claim DIR as an embedder does, start cloning
//	                          a rootfs, print "cloning", and block until
//	                          killed (or until stdin closes)
//	demohelper idle           block until stdin closes: an unrelated
//	                          process whose PID a stale record names
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stacklok/go-microvm/runner"
)

func main() {
	switch {
	case len(os.Args) == 3 && os.Args[1] == "embedder":
		os.Exit(embedder(os.Args[2]))
	case len(os.Args) == 2 && os.Args[1] == "idle":
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "usage: demohelper embedder DIR | demohelper idle")
	os.Exit(2)
}

// embedder claims dir (run lease and run marker), writes part of a rootfs,
// says so, and blocks: the demo SIGKILLs it there.
func embedder(dir string) int {
	claim, err := runner.NewClaim(context.Background(), dir, runner.WithoutCollect(),
		runner.WithName(filepath.Base(dir)), runner.WithImage("ghcr.io/example/sandbox:1.0"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo embedder: %v\n", err)
		return 1
	}
	rootfs := filepath.Join(dir, "rootfs-work", "bin")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "demo embedder: %v\n", err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(rootfs, "busybox"), make([]byte, 1<<20), 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "demo embedder: %v\n", err)
		return 1
	}
	fmt.Println("cloning")
	// Should the demo die before it kills us, stdin closes and the claim
	// is given up cleanly.
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = claim.Abort()
	return 1
}
