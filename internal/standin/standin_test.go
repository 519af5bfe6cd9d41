// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package standin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Main rejects what the released contract rules out.
func TestMainRejects(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no config", []string{"go-microvm-runner"}, 2},
		{"extra argument", []string{"go-microvm-runner", "{}", "x"}, 2},
		{"bad JSON", []string{"go-microvm-runner", "{"}, 2},
		{"no root_path", []string{"go-microvm-runner", `{"num_vcpus":1}`}, 2},
		{"root missing", []string{"go-microvm-runner", `{"root_path":"` + filepath.Join(t.TempDir(), "nope") + `"}`}, 1},
		{"root not a directory", []string{"go-microvm-runner", `{"root_path":"` + file + `"}`}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Main(tt.args); got != tt.want {
				t.Fatalf("Main(%q) = %d, want %d", tt.args, got, tt.want)
			}
		})
	}
}

// The watcher reports each loss or change of a file once, and again when
// a file that recovered breaks anew.
func TestWatcher(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	report := filepath.Join(t.TempDir(), "report")
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", "aaaa")
	write("sub/b", "bb")
	write("sub/c", "c")
	if err := os.Symlink("a", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	w, err := newWatcher(root, report)
	if err != nil {
		t.Fatal(err)
	}
	lines := func() []string {
		data, err := os.ReadFile(report)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(data)), "\n")
	}

	w.check()
	if got := lines(); got != nil {
		t.Fatalf("report with nothing changed: %q", got)
	}
	if err := os.Remove(filepath.Join(root, "sub/b")); err != nil {
		t.Fatal(err)
	}
	write("sub/c", "ccc")
	w.check()
	w.check()
	got := lines()
	if len(got) != 2 || !strings.HasPrefix(got[0], "lost "+filepath.Join(root, "sub/b")) ||
		got[1] != "changed "+filepath.Join(root, "sub/c")+": size 3, was 1" {
		t.Fatalf("report after a loss and a change: %q", got)
	}
	write("sub/c", "c")
	w.check()
	write("sub/c", "cc")
	w.check()
	if got := lines(); len(got) != 3 {
		t.Fatalf("report after a recovered file broke again: %q", got)
	}
}
