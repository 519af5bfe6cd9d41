// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// TestCrashSafety kills a collector process at random instants, again and
// again, beside live VMs whose lease a long-lived process holds. After each
// kill the live files and everything outside root are intact; at the end
// one Collect leaves no orphan and no trash. Kill k of n lands at a random
// instant of the k-th n-th of a run, so that even a few kills spread over
// the whole run (the first run is not killed: it measures the run; a run
// that ends before its kill is run again). 8 runs by default, 30 under
// GO_MICROVM_TEST_FULL=1; GC_KILL_ITERATIONS sets the number; package
// internal/stress kills 300 times. In place: the trash cannot be made (a
// file holds its name), so every rootfs-work is removed in place, and a
// kill leaves it half-deleted beside its state file.
func TestCrashSafety(t *testing.T) {
	t.Parallel()
	t.Run("trash", func(t *testing.T) { t.Parallel(); crashSafety(t, false) })
	t.Run("in place", func(t *testing.T) { t.Parallel(); crashSafety(t, true) })
}

func crashSafety(t *testing.T, inPlace bool) {
	iterations := testproc.Size(8, 30)
	if s := os.Getenv("GC_KILL_ITERATIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("GC_KILL_ITERATIONS: %v", err)
		}
		iterations = n
	}
	if testing.Short() {
		iterations = 5
	}
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	writeFile(t, filepath.Join(outside, "precious", "file"), "outside root")
	if inPlace {
		writeFile(t, filepath.Join(root, TrashName), "not a directory")
	}

	var live []string
	for i := range 3 {
		dir := filepath.Join(root, fmt.Sprintf("live-%d", i))
		if i == 2 {
			dir = filepath.Join(root, "live-nested", "data")
		}
		s := orphanState() // marker set: only the lease keeps it alive
		s.Name = "live"
		makeVM(t, dir, s)
		bigTree(t, filepath.Join(dir, rootfsWorkName), 3, outside)
		live = append(live, dir)
	}
	startHelper(t, "lease", strings.Join(live, "\n"), "ready")
	liveBefore := map[string]map[string]string{}
	for _, dir := range live {
		liveBefore[dir] = snapshot(t, dir)
	}
	outsideBefore := snapshot(t, outside)

	template := filepath.Join(base, "template")
	bigTree(t, template, testproc.Size(3, 4), outside)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var window time.Duration
	// killed counts the runs the kill cut short; trashLeft those that
	// left trash behind. They show that the kills land mid-run.
	killed, trashLeft := 0, 0
	kills := max(iterations-1, 1)
	// A run that finished before its kill proves nothing: the window
	// shrinks to the time it was given and the next run takes its slice,
	// up to three times as many runs as kills.
	runs := 0
	for i := 0; killed < kills && i < 3*iterations; i++ {
		runs++
		for k := range 3 {
			dir := filepath.Join(root, fmt.Sprintf("orphan-%d-%d", i, k))
			if k == 2 {
				dir = filepath.Join(root, fmt.Sprintf("nested-%d", i), "data")
			}
			makeVM(t, dir, orphanState())
			linkTree(t, template, filepath.Join(dir, rootfsWorkName, "big"))
		}
		h := startHelper(t, "collect", root, "start")
		if i == 0 {
			// The first run is not killed: it measures how long a run
			// takes, so that the kills land inside one.
			start := time.Now()
			waitExit(t, h)
			window = time.Since(start) + time.Millisecond
			continue
		}
		slice := window / time.Duration(kills)
		wait := time.Duration(killed)*slice + time.Duration(rng.Int64N(int64(slice)+1))
		time.Sleep(wait)
		_ = h.Cmd.Process.Kill()
		waitExit(t, h)
		if h.Cmd.ProcessState.Success() {
			window = max(wait, time.Millisecond)
		} else {
			killed++
		}
		if !inPlace && exists(t, filepath.Join(root, TrashName)) {
			trashLeft++
		}
		for _, dir := range live {
			sameSnapshot(t, fmt.Sprintf("live %s after kill %d", dir, i), liveBefore[dir], snapshot(t, dir))
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	if killed == 0 {
		t.Errorf("no kill of %d runs landed mid-run", runs-1)
	}

	rep := collect(t, root)
	t.Logf("%d of %d runs killed mid-run, %d left trash; window %s; final Collect: reclaimed %d, kept %d, freed %d bytes",
		killed, runs-1, trashLeft, window, len(rep.Reclaimed), len(rep.Kept), rep.BytesFreed)
	if orphans, err := Orphans(root); err != nil || len(orphans) != 0 {
		t.Errorf("Orphans after the final Collect = %+v, %v", orphans, err)
	}
	for _, dir := range live {
		sameSnapshot(t, "live "+dir, liveBefore[dir], snapshot(t, dir))
	}
	sameSnapshot(t, "outside", outsideBefore, snapshot(t, outside))
	// Nothing but the live VMs and the root lock is left, and what a kill
	// after a commit may leave: the data directory and its parent, empty
	// but for the unlocked state lock file, which are no longer candidates
	// and hold nothing.
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case rel == "." || rel == LockName() || rel == "live-nested", inPlace && rel == TrashName:
			return nil
		case strings.HasPrefix(rel, "live-"):
			return fs.SkipDir
		case d.IsDir() && (strings.HasPrefix(rel, "orphan-") || strings.HasPrefix(rel, "nested-")):
			return nil
		case d.Type().IsRegular() && d.Name() == state.LockFileName:
			return nil
		}
		t.Errorf("left in root: %q", rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// bigTree writes a tree with dirs×dirs directories of small files and
// symlinks to outside, big enough that removing it takes a while.
func bigTree(t testing.TB, dir string, dirs int, outside string) {
	t.Helper()
	for i := range dirs {
		for j := range dirs {
			d := filepath.Join(dir, fmt.Sprintf("d%d", i), fmt.Sprintf("e%d", j))
			mkdir(t, d)
			for k := range 20 {
				if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", k)), []byte(strings.Repeat("q", 100*k)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(outside, filepath.Join(d, "out")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A read-only directory, which removal must make writable first.
	readOnly(t, filepath.Join(dir, "d0"))
}

// readOnly makes dir read-only, and writable again when the test ends so
// that its temporary directory can be removed by a user who is not root.
func readOnly(t testing.TB, dir string) {
	t.Helper()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
}

// linkTree recreates the tree src at dst with hard links to its files,
// which is much faster than writing them again.
func linkTree(t testing.TB, src, dst string) {
	t.Helper()
	var roDirs []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Mode().Perm()&0o200 == 0 {
				roDirs = append(roDirs, to)
			}
			return os.MkdirAll(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		default:
			return os.Link(path, to)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range roDirs {
		readOnly(t, d)
	}
}

// waitExit closes the helper's stdin and reaps it, failing after the
// guard.
func waitExit(t testing.TB, h *testproc.Proc) {
	t.Helper()
	h.CloseStdin()
	_ = h.Wait()
}
