// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/state"
)

// buildTree fills dir with nfiles small files of random content spread over
// nested directories at most depth levels deep, and returns the number of
// directories made.
func buildTree(t testing.TB, dir string, r *rand.Rand, nfiles, depth int) int {
	t.Helper()
	n, err := makeTree(dir, r, nfiles, depth)
	if err != nil {
		t.Fatalf("make tree: %v", err)
	}
	return n
}

// makeTree is buildTree for helper processes, which have no testing.TB.
func makeTree(dir string, r *rand.Rand, nfiles, depth int) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	type node struct {
		path  string
		depth int
	}
	dirs := []node{{dir, 0}}
	buf := make([]byte, 4096)
	for i := 0; i < nfiles; i++ {
		parent := dirs[r.IntN(len(dirs))]
		if parent.depth < depth && r.IntN(8) == 0 {
			p := filepath.Join(parent.path, fmt.Sprintf("d%03d", len(dirs)))
			if err := os.Mkdir(p, 0o755); err != nil {
				return 0, err
			}
			dirs = append(dirs, node{p, parent.depth + 1})
			parent = dirs[len(dirs)-1]
		}
		n := r.IntN(len(buf))
		for j := 0; j < n; j++ {
			buf[j] = byte(r.Uint32())
		}
		if err := os.WriteFile(filepath.Join(parent.path, fmt.Sprintf("f%05d", i)), buf[:n], 0o644); err != nil {
			return 0, err
		}
	}
	return len(dirs), nil
}

// treeSum describes every entry below dir without following symbolic links:
// type, permission bits, size and content digest of files, target of links.
// Link counts and times are left out on purpose: unlinking a hard link to a
// file legitimately changes the file's link count, not its data.
func treeSum(t testing.TB, dir string) map[string]string {
	t.Helper()
	sum := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %o", fi.Mode().Type(), fi.Mode().Perm())
		switch {
		case fi.Mode().IsRegular():
			h, err := fileDigest(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %d %s", fi.Size(), h)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		sum[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("sum tree %s: %v", dir, err)
	}
	return sum
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// diffSums lists the entries that were lost, added or changed between two
// tree sums, at most max of them.
func diffSums(before, after map[string]string, max int) (lost int, lines []string) {
	var keys []string
	for k := range before {
		keys = append(keys, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		b, inB := before[k]
		a, inA := after[k]
		switch {
		case inB && !inA:
			lost++
			lines = append(lines, "lost "+k)
		case !inB && inA:
			lines = append(lines, "added "+k)
		case a != b:
			lost++
			lines = append(lines, fmt.Sprintf("changed %s: %s -> %s", k, b, a))
		}
	}
	if len(lines) > max {
		lines = append(lines[:max], fmt.Sprintf("... and %d more", len(lines)-max))
	}
	return lost, lines
}

// checkSame fails t when the tree under dir differs from want.
func checkSame(t testing.TB, what, dir string, want map[string]string) {
	t.Helper()
	got := treeSum(t, dir)
	if _, lines := diffSums(want, got, 10); len(lines) > 0 {
		t.Errorf("%s %s changed:\n%s", what, dir, strings.Join(lines, "\n"))
	}
}

// makeSentinel lays a tree outside any root: files, a subdirectory, a valid
// orphan-looking state file (a target for symlinks from inside the root),
// and a file meant as the target of hard links from inside the root.
func makeSentinel(t testing.TB, dir string) {
	t.Helper()
	files := map[string]string{
		"precious.txt":          "must never be deleted\n",
		"sub/deeper/data.bin":   strings.Repeat("x", 10000),
		"hardlink-target.txt":   "shared inode with a file inside the root\n",
		"trash-lookalike/a.txt": "a collector must not empty this\n",
		"lockfile":              "",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vm := filepath.Join(dir, "vm")
	if err := os.MkdirAll(filepath.Join(vm, "rootfs-work", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vm, "rootfs-work", "etc", "hostname"), []byte("outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeStateFile(t, vm, func(s *state.State) {
		s.Active = true
		s.Leased = true
		s.PID = deadPID(t)
		s.PIDStartTime = time.Now()
	})
}

// writeState records s, as modified by edit, in dataDir through package
// state (state lock, atomic save), creating dataDir when needed.
func writeStateFile(t testing.TB, dataDir string, edit func(*state.State)) {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatalf("make data dir: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ls, err := state.NewManager(dataDir).LoadAndLock(ctx)
	if err != nil {
		t.Fatalf("lock state of %s: %v", dataDir, err)
	}
	defer ls.Release()
	ls.Version = state.CurrentVersion
	ls.Name = filepath.Base(dataDir)
	ls.Image = "example.com/stress:latest"
	ls.CPUs = 1
	ls.MemoryMB = 128
	ls.CreatedAt = time.Now().Add(-time.Hour)
	edit(ls.State)
	if err := ls.Save(); err != nil {
		t.Fatalf("save state of %s: %v", dataDir, err)
	}
}

// markOrphan records dataDir as a run that ended without a clean stop: the
// marker is set and nobody holds the lease.
func markOrphan(t testing.TB, dataDir string) {
	t.Helper()
	writeStateFile(t, dataDir, func(s *state.State) {
		s.Active = true
		s.Leased = true
		s.PID = deadPID(t)
		s.PIDStartTime = time.Now()
	})
}

var deadPIDCache int

// deadPID returns the PID of a process that has exited and been reaped. The
// kernel may hand the number to a new process later; callers that set the
// run marker do not depend on it, the others accept "PID reused" as well.
func deadPID(t testing.TB) int {
	t.Helper()
	if deadPIDCache != 0 {
		return deadPIDCache
	}
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run /bin/true: %v", err)
	}
	deadPIDCache = cmd.ProcessState.Pid()
	return deadPIDCache
}

// trashEntries lists what is left in root's trash; a missing trash is empty.
func trashEntries(t testing.TB, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, gc.TrashName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("read trash: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// classes maps each candidate path under root to its class.
func classes(t testing.TB, root string) map[string]gc.Candidate {
	t.Helper()
	cands, err := gc.Scan(root)
	if err != nil {
		t.Fatalf("scan %s: %v", root, err)
	}
	m := map[string]gc.Candidate{}
	for _, c := range cands {
		m[c.Path] = c
	}
	return m
}

// waitPIDFile waits until the stand-in wrote its PID to path and returns it.
func waitPIDFile(t testing.TB, path string, guard time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not get a PID within %v", path, guard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reportLines returns the non-empty lines of a stand-in loss report; a
// missing report means no stand-in saw a loss.
func reportLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("read stand-in report: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
