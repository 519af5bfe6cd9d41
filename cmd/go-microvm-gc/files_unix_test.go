// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// TestMetricsFileFIFO: a --metrics-file that names a FIFO is refused at
// once (exit 2), and the FIFO stays; the read of an earlier file never
// waits on one swapped in later. Both are bounded: the old command opened
// the FIFO and waited for a writer, deaf even to SIGTERM.
func TestMetricsFileFIFO(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	makeOrphan(t, filepath.Join(root, "vm"), 1)
	fifo := filepath.Join(dir, "go-microvm-gc.prom")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	cmd := gcCommand(t, "collect", "--root", root, "--metrics-file", fifo)
	go func() {
		<-ctx.Done()
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	}()
	code, stdout, stderr := runGC(t, cmd)
	if ctx.Err() != nil {
		t.Fatalf("collect with a FIFO as --metrics-file still ran after %s", guard)
	}
	if code != exitUsage || !strings.Contains(stderr, "not a regular file") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("exit %d, want %d with one line saying why\nstdout:\n%s\nstderr:\n%s", code, exitUsage, stdout, stderr)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("the FIFO was replaced: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "vm", state.FileName)); err != nil {
		t.Errorf("the refused run collected: %v", err)
	}
	done := make(chan map[string]float64, 1)
	go func() { done <- readLastSuccess(fifo) }()
	select {
	case got := <-done:
		if len(got) != 0 {
			t.Errorf("readLastSuccess(FIFO) = %v, want nothing", got)
		}
	case <-ctx.Done():
		t.Fatalf("readLastSuccess waits on a FIFO")
	}
}

// TestInvalidUTF8Names: two directory names that differ only in bytes a
// JSON string cannot hold (invalid UTF-8, and the U+FFFD encoding/json
// puts in their place) stay apart in every JSON form: path_bytes holds
// the exact bytes of a path that is not valid UTF-8.
func TestInvalidUTF8Names(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	names := []string{"bad\xff\xfe", "bad\uFFFD\uFFFD"}
	want := map[string]bool{}
	for _, n := range names {
		dir := filepath.Join(root, n)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Skipf("this filesystem refuses the name %q: %v", n, err)
		}
		makeOrphan(t, dir, 1)
		want[dir] = true
	}
	// exact is the path a consumer reads: path_bytes when present.
	type entry struct {
		Path      string `json:"path"`
		PathBytes []byte `json:"path_bytes"`
	}
	exact := func(e entry) string {
		if e.PathBytes != nil {
			return string(e.PathBytes)
		}
		return e.Path
	}
	check := func(form string, got []entry) {
		t.Helper()
		seen := map[string]bool{}
		for _, e := range got {
			seen[exact(e)] = true
		}
		if len(got) != len(want) || len(seen) != len(want) {
			t.Errorf("%s: %d entries naming %d paths, want %d: %+v", form, len(got), len(seen), len(want), got)
		}
		for p := range seen {
			if !want[p] {
				t.Errorf("%s: names %q, which is not a data directory", form, p)
			}
		}
	}
	_, stdout, _ := runGC(t, gcCommand(t, "list", "--json", "--root", root))
	var doc struct{ Dirs []entry }
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	check("list --json", doc.Dirs)
	_, stdout, _ = runGC(t, gcCommand(t, "list", "--json-lines", "--root", root))
	var lines []entry
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var e struct {
			Kind string
			entry
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == lineDir {
			lines = append(lines, e.entry)
		}
	}
	check("list --json-lines", lines)
	_, stdout, _ = runGC(t, gcCommand(t, "collect", "--json", "--root", root))
	var col struct{ Reclaimed []entry }
	if err := json.Unmarshal([]byte(stdout), &col); err != nil {
		t.Fatal(err)
	}
	check("collect --json", col.Reclaimed)
}

// TestTrashBytes: the trash is sized as the collector deletes it: a file
// hard-linked twice counts once, a symlink is not followed.
func TestTrashBytes(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	trash := filepath.Join(root, gc.TrashName)
	big := filepath.Join(root, "outside")
	if err := os.MkdirAll(filepath.Join(trash, "0", "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	for path, size := range map[string]int{filepath.Join(trash, "0", "etc", "a"): 64 << 10, big: 1 << 20} {
		if err := os.WriteFile(path, make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(trash, "0", "etc", "a"), filepath.Join(trash, "0", "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(big, filepath.Join(trash, "0", "c")); err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, p := range []string{trash, filepath.Join(trash, "0"), filepath.Join(trash, "0", "etc"), filepath.Join(trash, "0", "etc", "a"), filepath.Join(trash, "0", "c")} {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		want += st.Blocks * 512
	}
	got, ok := trashIn(context.Background(), root, true)
	if !ok || got.Entries != 1 || got.Bytes != want {
		t.Errorf("trashIn = %+v, %v; want 1 entry of %d bytes", got, ok, want)
	}
	// What collect -n estimates is what collect frees.
	rep, err := gc.Collect(root)
	if err != nil || rep.BytesFreed != want {
		t.Errorf("Collect freed %d bytes (%v), want %d", rep.BytesFreed, err, want)
	}
	if _, err := os.Lstat(trash); !os.IsNotExist(err) || fileSize(t, big) != 1<<20 {
		t.Errorf("after Collect: trash %v, outside file changed", err)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
