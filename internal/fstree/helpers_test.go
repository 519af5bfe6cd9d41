// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/hangtest"
	"github.com/stacklok/go-microvm/internal/testproc"
)

// guardTimeout only detects hangs; no test asserts elapsed time.
const guardTimeout = 2 * time.Minute

// TestMain lets the test binary act as a helper process: the helper
// "remove" removes FSTREE_NAME from FSTREE_DIR (under
// RLIMIT_NOFILE=FSTREE_NOFILE when set) and prints the Result.
func TestMain(m *testing.M) {
	testproc.Register("remove", func([]string) int { return helperRemove() })
	testproc.Main(m)
}

// helperResult is Result with errors as strings, for JSON.
type helperResult struct {
	Bytes, Files, Dirs int64
	Mounts, Errors     []string
	Err                string
}

func helperRemove() int {
	if err := testproc.LimitFiles("FSTREE_NOFILE"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	dir, err := os.Open(os.Getenv("FSTREE_DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer dir.Close()
	name := os.Getenv("FSTREE_NAME")
	res, err := Options{}.RemoveAt(context.Background(), dir, name, filepath.Join(dir.Name(), name))
	out := helperResult{Bytes: res.Bytes, Files: res.Files, Dirs: res.Dirs, Mounts: res.Mounts}
	for _, e := range res.Errors {
		out.Errors = append(out.Errors, e.Error())
	}
	if err != nil {
		out.Err = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err != nil {
		return 1
	}
	return 0
}

// guarded runs f and fails the test if it has not returned in
// guardTimeout.
func guarded(t *testing.T, f func() (Result, error)) (Result, error) {
	t.Helper()
	return hangtest.Within(t, guardTimeout, "walk", f)
}

func openDir(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// removeTree runs o.RemoveAt on dir/name under the hang guard.
func removeTree(t *testing.T, ctx context.Context, o Options, dir, name string) (Result, error) {
	t.Helper()
	parent := openDir(t, dir)
	return guarded(t, func() (Result, error) {
		return o.RemoveAt(ctx, parent, name, filepath.Join(dir, name))
	})
}

// sizeTree runs o.SizeAt on dir/name under the hang guard.
func sizeTree(t *testing.T, ctx context.Context, o Options, dir, name string) (Result, error) {
	t.Helper()
	parent := openDir(t, dir)
	return guarded(t, func() (Result, error) {
		return o.SizeAt(ctx, parent, name, filepath.Join(dir, name))
	})
}

// sizeThenRemove measures dir/name, then removes it, and fails the test
// unless both succeed and the tree is gone.
func sizeThenRemove(t *testing.T, o Options, dir, name string) (size, res Result) {
	t.Helper()
	size, err := sizeTree(t, context.Background(), o, dir, name)
	if err != nil {
		t.Fatal(err)
	}
	if res, err = removeTree(t, context.Background(), o, dir, name); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, filepath.Join(dir, name))
	return size, res
}

// snapshot describes every entry below root (type, mode, content hash,
// link target) without following symlinks, for "left intact" checks.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("%s: %d entries before, %d after", what, len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %q was %q, now %q", what, k, v, after[k])
		}
	}
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%q still exists (lstat: %v)", path, err)
	}
}

func mustExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("%q should exist: %v", path, err)
	}
}

func writeFile(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + size)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// makeSentinel fills dir with things a buggy remover would follow into.
func makeSentinel(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "file"), 100)
	writeFile(t, filepath.Join(dir, "sub", "deep"), 200)
}

// runHelper runs the test binary as a helper process (prefixed by argv0,
// e.g. setpriv, when given) with env, and decodes its result; the helper
// must succeed.
func runHelper(t *testing.T, prefix []string, env ...string) helperResult {
	t.Helper()
	out, err := runHelperErr(t, prefix, env...)
	if err != nil {
		t.Fatalf("helper: %v: %s (result %+v)", err, out.Err, out)
	}
	return out
}

// runHelperErr is runHelper for a helper that may fail: it returns the
// result with the helper's exit error.
func runHelperErr(t *testing.T, prefix []string, env ...string) (helperResult, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	args := append(slices.Clone(prefix), exe)
	if len(prefix) > 0 {
		exe = testproc.CopyTestBinary(t, testproc.PublicTempDir(t), "fstree.test")
		args[len(args)-1] = exe
	}
	ctx, cancel := context.WithTimeout(context.Background(), guardTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), testproc.Env("remove"))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out helperResult
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("helper: %v, stdout %q, stderr %q", runErr, stdout.String(), stderr.String())
	}
	if runErr != nil {
		runErr = fmt.Errorf("%w (stderr %q)", runErr, stderr.String())
	}
	return out, runErr
}

// nobody runs a helper as uid and gid 65534.
var nobody = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}
