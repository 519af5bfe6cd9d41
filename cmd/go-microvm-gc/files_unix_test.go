// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/state"
)

// TestFewDescriptors: under RLIMIT_NOFILE 20, with 32 walkers asked for,
// list finds every data directory, below plain directories too, with its
// true class and no error: a collector short of descriptors walks with
// fewer goroutines and never calls a directory unreadable for it. Old
// walkers starved each other at random, so the listing is made five times.
func TestFewDescriptors(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	want := map[string]bool{}
	for i := range 64 {
		dir := filepath.Join(root, fmt.Sprintf("p%02d", i), "vm")
		if err := os.MkdirAll(filepath.Join(dir, "rootfs-work"), 0o755); err != nil {
			t.Fatal(err)
		}
		st := `{"version":1,"active":false,"name":"s","created_at":"2024-01-01T00:00:00Z"}`
		if err := os.WriteFile(filepath.Join(dir, state.FileName), []byte(st), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("plain%02d", i), "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		want[dir] = true
	}
	for run := range 5 {
		cmd := gcCommand(t, "list", "--json", "--root", root)
		cmd.Env = append(cmd.Env, "GOMAXPROCS=32")
		cmd.Args = append([]string{"sh", "-c", `ulimit -n 20 && exec "$0" "$@"`, cmd.Path}, cmd.Args[1:]...)
		cmd.Path = "/bin/sh"
		code, stdout, stderr := runGC(t, cmd)
		var doc listJSON
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil || code != 0 || stderr != "" {
			t.Fatalf("run %d: exit %d, %v\nstderr:\n%s", run, code, err, stderr)
		}
		got := 0
		for _, d := range doc.Dirs {
			if !want[d.Path] || d.Class != gc.ClassStopped {
				t.Errorf("run %d: %s is %s (%s)", run, d.Path, d.Class, d.Detail)
			}
			got++
		}
		if got != len(want) {
			t.Fatalf("run %d: %d data directories listed, want %d", run, got, len(want))
		}
	}
}
