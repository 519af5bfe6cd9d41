// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

func TestMissingRoot(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "never-created")
	if cands, err := Scan(root); err != nil || len(cands) != 0 {
		t.Errorf("Scan = %v, %v; want nothing, nil", cands, err)
	}
	if orphans, err := Orphans(root); err != nil || len(orphans) != 0 {
		t.Errorf("Orphans = %v, %v; want nothing, nil", orphans, err)
	}
	rep, err := Collect(root)
	if err != nil || rep == nil || len(rep.Reclaimed)+len(rep.Kept)+len(rep.Errors) != 0 {
		t.Errorf("Collect = %+v, %v; want an empty report, nil", rep, err)
	}
	mustNotExist(t, root)
}

func TestRootNotADirectory(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "file")
	writeFile(t, root, "x")
	if _, err := Orphans(root); err == nil {
		t.Error("Orphans on a file: no error")
	}
	if _, err := Collect(root); err == nil {
		t.Error("Collect on a file: no error")
	}
}

// TestForeignFilesPreserved: only what go-microvm owns goes; the embedder's
// files keep the data directory, and the collector never touches them.
func TestForeignFilesPreserved(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	dir := filepath.Join(root, "vm")
	makeVM(t, dir, orphanState())
	foreign := map[string]string{
		"state.json":          `{"embedder":"own state"}`,
		"cache/blob":          "image layer",
		"data/disk.img":       "disk",
		"notes.txt":           "mine",
		"console.log.1":       "rotated by the embedder",
		"state-x.json":        "not a temp save",
		"rootfs-work-old/a":   "not rootfs-work",
		"go-microvm-state.js": "near miss",
	}
	for name, content := range foreign {
		writeFile(t, filepath.Join(dir, name), content)
	}
	rep := collect(t, root)
	if len(rep.Reclaimed) != 1 {
		t.Fatalf("Reclaimed = %+v", rep.Reclaimed)
	}
	for name, content := range foreign {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != content {
			t.Errorf("%s: %q, %v; want %q kept", name, got, err, content)
		}
	}
	mustNotExist(t, filepath.Join(dir, rootfsWorkName), filepath.Join(dir, state.FileName), filepath.Join(dir, state.LockFileName),
		filepath.Join(dir, consoleLogName), filepath.Join(dir, vmLogName), filepath.Join(dir, "state-12345.json.tmp"))
	mustNotExist(t, filepath.Join(root, TrashName))
}

// TestRootIsDataDir: the layout where root itself is the data directory
// and holds the image cache.
func TestRootIsDataDir(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	makeVM(t, root, orphanState())
	writeFile(t, filepath.Join(root, cacheName, "sha256", "layer"), "cached image")
	// A state file inside the cache is not a data directory.
	writeJSON(t, filepath.Join(root, cacheName, "sha256"), orphanState())
	// Another VM's data directory beside it is still found.
	makeVM(t, filepath.Join(root, "other"), orphanState())

	orphans, err := Orphans(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 2 || orphans[0].Path != root || orphans[1].Path != filepath.Join(root, "other") {
		t.Fatalf("Orphans = %+v, want root and root/other", orphans)
	}
	collect(t, root)
	mustExist(t, root, filepath.Join(root, cacheName, "sha256", "layer"), filepath.Join(root, cacheName, "sha256", state.FileName))
	mustNotExist(t, filepath.Join(root, rootfsWorkName), filepath.Join(root, state.FileName), filepath.Join(root, "other"), filepath.Join(root, TrashName))
}

// TestLayouts: root/<name>/ and root/<name>/data/, with the empty parent
// removed and a non-empty one kept.
func TestLayouts(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	makeVM(t, filepath.Join(root, "flat"), orphanState())
	makeVM(t, filepath.Join(root, "nested", "data"), orphanState())
	makeVM(t, filepath.Join(root, "busy-parent", "data"), orphanState())
	writeFile(t, filepath.Join(root, "busy-parent", "embedder.log"), "log")
	makeVM(t, filepath.Join(root, "live", "data"), &state.State{Version: 1})
	rep := collect(t, root)
	if len(rep.Reclaimed) != 3 || len(rep.Kept) != 1 {
		t.Fatalf("Reclaimed %+v, Kept %+v", rep.Reclaimed, rep.Kept)
	}
	mustNotExist(t, filepath.Join(root, "flat"), filepath.Join(root, "nested"), filepath.Join(root, "busy-parent", "data"))
	mustExist(t, root, filepath.Join(root, "busy-parent", "embedder.log"), filepath.Join(root, "live", "data", state.FileName))
}

func TestDepth(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	deep := filepath.Join(root, "a", "b", "c")
	makeVM(t, deep, orphanState())
	makeVM(t, root, orphanState())
	count := func(opts ...Option) int {
		orphans, err := Orphans(root, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return len(orphans)
	}
	if n := count(); n != 1 {
		t.Errorf("default depth: %d orphans, want 1 (root only)", n)
	}
	if n := count(WithDepth(3)); n != 2 {
		t.Errorf("depth 3: %d orphans, want 2", n)
	}
	if n := count(WithDepth(0)); n != 1 {
		t.Errorf("depth 0: %d orphans, want 1", n)
	}
}

// TestOddNames: names with newlines and invalid UTF-8 are paths like any.
func TestOddNames(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	names := []string{"new\nline", "bad-\xff\xfe-utf8", " leading space", "-dash"}
	var dirs []string
	for _, n := range names {
		dirs = append(dirs, filepath.Join(root, n), filepath.Join(root, "p"+n, "data"))
	}
	for _, d := range dirs {
		makeVM(t, d, orphanState())
		writeFile(t, filepath.Join(d, rootfsWorkName, "odd\n\xff"), "x")
	}
	rep := collect(t, root)
	if len(rep.Reclaimed) != len(dirs) {
		t.Errorf("reclaimed %d, want %d", len(rep.Reclaimed), len(dirs))
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != LockName() {
			t.Errorf("left in root: %q", e.Name())
		}
	}
}

// TestSymlinkedDataDir: a symlink in root that points at a data directory
// outside is neither a candidate nor entered.
func TestSymlinkedDataDir(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	makeVM(t, outside, orphanState())
	makeVM(t, filepath.Join(outside, "sub"), orphanState())
	mkdir(t, filepath.Join(root, "real"))
	for _, link := range []string{filepath.Join(root, "link"), filepath.Join(root, "real", "link")} {
		if err := os.Symlink(outside, link); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, outside)
	if orphans, err := Orphans(root, WithDepth(5)); err != nil || len(orphans) != 0 {
		t.Fatalf("Orphans = %+v, %v; want none", orphans, err)
	}
	collect(t, root, WithDepth(5))
	sameSnapshot(t, "outside", before, snapshot(t, outside))
	mustExist(t, filepath.Join(root, "link"), filepath.Join(root, "real", "link"))
}

// TestSymlinksInsideRootfsWork: links in a reclaimed tree are unlinked,
// never followed.
func TestSymlinksInsideRootfsWork(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "sentinel")
	writeFile(t, filepath.Join(outside, "keep", "file"), "precious")
	dir := filepath.Join(root, "vm")
	makeVM(t, dir, orphanState())
	work := filepath.Join(dir, rootfsWorkName)
	for name, target := range map[string]string{
		"dirlink":         filepath.Join(outside, "keep"),
		"filelink":        filepath.Join(outside, "keep", "file"),
		"etc/relative":    "../../../../sentinel/keep",
		"usr/lib/rootlnk": "/",
		"dangling":        filepath.Join(base, "nowhere"),
	} {
		mkdir(t, filepath.Dir(filepath.Join(work, name)))
		if err := os.Symlink(target, filepath.Join(work, name)); err != nil {
			t.Fatal(err)
		}
	}
	// rootfs-work itself as a symlink out of root, in another data dir.
	dir2 := filepath.Join(root, "vm2")
	makeVM(t, dir2, orphanState())
	os.RemoveAll(filepath.Join(dir2, rootfsWorkName))
	if err := os.Symlink(outside, filepath.Join(dir2, rootfsWorkName)); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, outside)
	rep := collect(t, root)
	if len(rep.Reclaimed) != 2 {
		t.Errorf("Reclaimed = %+v", rep.Reclaimed)
	}
	sameSnapshot(t, "sentinel", before, snapshot(t, outside))
	mustNotExist(t, dir, dir2)
}

// TestDeepTree: a rootfs-work deeper than PATH_MAX is removed.
func TestDeepTree(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	dir := filepath.Join(root, "vm")
	makeVM(t, dir, orphanState())
	fd, err := unix.Open(filepath.Join(dir, rootfsWorkName), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 100)
	depth := 2*unix.PathMax/len(name) + 1
	for range depth {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = nfd
	}
	tfd, err := unix.Openat(fd, "leaf", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(tfd)
	unix.Close(fd)
	rep := collect(t, root)
	if len(rep.Reclaimed) != 1 {
		t.Fatalf("Reclaimed = %+v", rep.Reclaimed)
	}
	mustNotExist(t, dir, filepath.Join(root, TrashName))
}

// TestTwoCollectors: a collector that finds the root lock held returns
// ErrBusy at once and touches nothing.
func TestTwoCollectors(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	dir := filepath.Join(root, "vm")
	makeVM(t, dir, orphanState())
	h := startHelper(t, "rootlock", root, "ready")
	before := snapshot(t, root)
	done := make(chan struct{})
	var rep *Report
	var err error
	go func() {
		defer close(done)
		rep, err = Collect(root)
	}()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatal("Collect waited for the root lock")
	}
	if !errors.Is(err, ErrBusy) || rep != nil {
		t.Fatalf("Collect = %+v, %v; want nil, ErrBusy", rep, err)
	}
	sameSnapshot(t, "root", before, snapshot(t, root))
	h.Kill()
	if rep := collect(t, root); len(rep.Reclaimed) != 1 {
		t.Errorf("after the other collector: Reclaimed = %+v", rep.Reclaimed)
	}
}

// TestConcurrentCollectors: collectors in one process exclude each other
// too, and together reclaim everything once.
func TestConcurrentCollectors(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	for _, n := range []string{"a", "b", "c", "d"} {
		makeVM(t, filepath.Join(root, n), orphanState())
	}
	errs := make(chan error, 4)
	reclaimed := make(chan int, 4)
	for range 4 {
		go func() {
			rep, err := Collect(root)
			if err == nil {
				reclaimed <- len(rep.Reclaimed)
			} else {
				reclaimed <- 0
			}
			errs <- err
		}()
	}
	total := 0
	for range 4 {
		select {
		case err := <-errs:
			if err != nil && !errors.Is(err, ErrBusy) {
				t.Error(err)
			}
			total += <-reclaimed
		case <-time.After(guard):
			t.Fatal("collectors did not return")
		}
	}
	if total != 4 {
		t.Errorf("reclaimed %d in total, want 4", total)
	}
}

// allKinds lays out one data directory of each kind that needs no process.
func allKinds(t testing.TB, root string) {
	makeVM(t, filepath.Join(root, "orphan"), orphanState())
	makeVM(t, filepath.Join(root, "nested", "data"), orphanState())
	makeVM(t, filepath.Join(root, "stopped"), &state.State{Version: 1})
	makeVM(t, filepath.Join(root, "unknown"), &state.State{Version: 1, Active: true})
	makeVM(t, filepath.Join(root, "corrupt"), orphanState())
	writeFile(t, filepath.Join(root, "corrupt", state.FileName), "{")
	makeVM(t, filepath.Join(root, "nolock"), orphanState())
	os.Remove(filepath.Join(root, "nolock", state.LockFileName))
	mkdir(t, filepath.Join(root, "empty"))
}

// TestNothingLockedAfterCollectWhileForking: what Collect locked is free
// once it returns, even while other goroutines fork: the child of a fork
// holds a copy of every descriptor until its exec, so a lock dropped only
// by closing its descriptor would outlive the collection.
func TestNothingLockedAfterCollectWhileForking(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	var forks sync.WaitGroup
	for range 4 {
		forks.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					_ = exec.Command(runnerPath, "-h").Run()
				}
			}
		})
	}
	defer forks.Wait()
	defer close(stop)
	root := t.TempDir()
	var dirs []string
	for i := range 4 {
		dirs = append(dirs, filepath.Join(root, fmt.Sprint(i)))
		makeVM(t, dirs[i], orphanState())
	}
	keepAll := WithKeep(func(string) bool { return true })
	for range testproc.Size(50, 500) {
		if rep := collect(t, root, keepAll); len(rep.Kept) != len(dirs) {
			t.Fatalf("kept %+v, want every directory", rep.Kept)
		}
		for _, dir := range dirs {
			if held, err := state.ProbeLease(dir); err != nil || held {
				t.Fatalf("lease on %s after Collect returned: held %v, %v; want free", dir, held, err)
			}
		}
	}
}

// TestOrphansCreatesNothing: Orphans and Scan (even measuring) leave every
// file, directory and modification time as they were.
func TestOrphansCreatesNothing(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	allKinds(t, root)
	before := snapshot(t, root)
	orphans, err := Orphans(root, WithSizes())
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 3 {
		t.Errorf("Orphans = %+v, want 3", orphans)
	}
	for _, o := range orphans {
		if o.Bytes <= 0 {
			t.Errorf("%s: WithSizes measured %d bytes", o.Path, o.Bytes)
		}
	}
	if _, err := Scan(root, WithSizes(), WithStopped(0)); err != nil {
		t.Fatal(err)
	}
	rep, err := Collect(root, WithDryRun())
	if err != nil || !rep.DryRun || len(rep.Reclaimed) != 3 {
		t.Errorf("dry run: %+v, %v", rep, err)
	}
	sameSnapshot(t, "root", before, snapshot(t, root))
}

// TestLeftoverTrash: trash left by a collector killed after its commit is
// emptied first and never counted as a candidate.
func TestLeftoverTrash(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	leftoverTree(t, filepath.Join(root, TrashName, "1-1-1"))
	leftoverTree(t, filepath.Join(root, TrashName, "1-1-2"))
	ownTrash(t, root)
	makeVM(t, filepath.Join(root, "live"), &state.State{Version: 1})
	if orphans, err := Orphans(root); err != nil || len(orphans) != 0 {
		t.Fatalf("Orphans = %+v, %v; want none", orphans, err)
	}
	rep := collect(t, root)
	if rep.BytesFreed < 2*9000 {
		t.Errorf("BytesFreed = %d", rep.BytesFreed)
	}
	mustNotExist(t, filepath.Join(root, TrashName))
	mustExist(t, filepath.Join(root, "live", state.FileName), filepath.Join(root, "live", rootfsWorkName))
}

func leftoverTree(t testing.TB, dir string) {
	writeFile(t, filepath.Join(dir, "a", "b", "c"), strings.Repeat("z", 9000))
	writeJSON(t, filepath.Join(dir, "fake"), orphanState())
}

// ownTrash gives root's trash the mode a collector makes it with, so that
// a collector uses what a test left there.
func ownTrash(t testing.TB, root string) {
	t.Helper()
	if err := os.Chmod(filepath.Join(root, TrashName), 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestBudget: a spent budget defers everything, still reclaimable; the
// next run finishes.
func TestBudget(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	makeVM(t, filepath.Join(root, "a"), orphanState())
	makeVM(t, filepath.Join(root, "b"), orphanState())
	writeFile(t, filepath.Join(root, TrashName, "old", "f"), "trash")
	ownTrash(t, root)
	rep := collect(t, root, WithBudget(time.Nanosecond))
	if !rep.Deferred || len(rep.Reclaimed) != 0 || len(rep.Kept) != 2 || rep.Kept[0].Class != ClassOrphan {
		t.Fatalf("spent budget: %+v", rep)
	}
	mustExist(t, filepath.Join(root, TrashName, "old", "f"))
	rep = collect(t, root, WithBudget(time.Hour))
	if rep.Deferred || len(rep.Reclaimed) != 2 {
		t.Fatalf("second run: %+v", rep)
	}
	mustNotExist(t, filepath.Join(root, TrashName), filepath.Join(root, "a"), filepath.Join(root, "b"))
}

func TestCancelledContext(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	makeVM(t, filepath.Join(root, "a"), orphanState())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := CollectContext(ctx, root)
	if !errors.Is(err, context.Canceled) || rep == nil || len(rep.Reclaimed) != 0 {
		t.Fatalf("CollectContext = %+v, %v", rep, err)
	}
	mustExist(t, filepath.Join(root, "a", state.FileName))
}

// TestSwappedForSymlink: a data directory replaced by a symlink after the
// collector locked it is left alone, with an error; so is the directory
// the symlink points at.
func TestSwappedForSymlink(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	dir := filepath.Join(root, "vm")
	moved := filepath.Join(base, "moved")
	makeVM(t, dir, orphanState())
	locked := func(path string) {
		if err := os.Rename(path, moved); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(moved, path); err != nil {
			t.Error(err)
		}
	}
	rep, err := Collect(root, withHooks(hooks{locked: locked}))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Reclaimed) != 0 || len(rep.Errors) != 1 || rep.Errors[0].Path != dir {
		t.Errorf("Reclaimed %+v, Errors %v; want one error for %s", rep.Reclaimed, rep.Errors, dir)
	}
	mustExist(t, filepath.Join(moved, state.FileName), filepath.Join(moved, rootfsWorkName, "etc", "file0"), filepath.Join(moved, state.LockFileName))
}

// TestChangedUnderLock: a verdict that no longer holds once the locks are
// taken is not acted on.
func TestChangedUnderLock(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	dir := filepath.Join(root, "vm")
	makeVM(t, dir, orphanState())
	// A clean stop written between the scan and the locks.
	cands, err := Scan(root)
	if err != nil || len(cands) != 1 || cands[0].Class != ClassOrphan {
		t.Fatalf("Scan = %+v, %v", cands, err)
	}
	writeJSON(t, dir, &state.State{Version: 1})
	c := &collector{o: newOptions(nil), abs: root, ctx: context.Background(), budget: context.Background(), rep: &Report{}, ob: judge.NewObserver(time.Now)}
	rootDir, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rootDir.Close()
	c.root = rootDir
	c.reclaim(scanned{Candidate: cands[0], rel: "vm"})
	if len(c.rep.Reclaimed) != 0 || len(c.rep.Kept) != 1 || c.rep.Kept[0].Class != ClassStopped {
		t.Errorf("report %+v; want kept as stopped", c.rep)
	}
	mustExist(t, filepath.Join(dir, rootfsWorkName), filepath.Join(dir, state.FileName))
}

// TestLogging: one Info line per reclaimed directory, Debug per kept one.
func TestLogging(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	makeVM(t, filepath.Join(root, "orphan"), orphanState())
	makeVM(t, filepath.Join(root, "stopped"), &state.State{Version: 1})
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	collect(t, root, WithLogger(l))
	out := buf.String()
	if strings.Count(out, "level=INFO msg=\"gc: reclaimed\"") != 1 || strings.Count(out, "level=DEBUG msg=\"gc: kept\"") != 1 {
		t.Errorf("log:\n%s", out)
	}
}
