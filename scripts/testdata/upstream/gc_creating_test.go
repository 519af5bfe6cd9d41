// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// This file is not part of this module: scripts/upstream-check.sh copies it
// into the root package of a released go-microvm tree. Its embedder is the
// released microvm.Run with one preflight check,
// gc.BeforeCreate(root, gc.WithCreating(dataDir)), the released image
// cache and rootfs clone, and the released libkrun backend starting the
// stand-in runner (internal/cmd/go-microvm-runner) through our runner
// package; each embedder runs in its own process and is SIGKILLed.

package microvm

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/hypervisor/libkrun"
	"github.com/stacklok/go-microvm/image"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/preflight"
	"github.com/stacklok/go-microvm/runner"
	"github.com/stacklok/go-microvm/state"
)

// creatingImage is the image every embedder here runs: one layer of
// creatingDirs×creatingFiles small files, so that the clone takes long
// enough to be killed in.
const (
	creatingImage = "example.com/go-microvm-gc/creating:latest"
	creatingDirs  = 20
	creatingFiles = 100
)

var creatingRunner string // the stand-in, built by TestMain

func TestMain(m *testing.M) {
	testproc.Register("released-run", helperReleasedRun)
	if !testproc.IsHelper() {
		creatingRunner = testproc.MustBuildRunner()
	}
	testproc.Main(m, func() {
		if creatingCacheDir != "" {
			_ = os.RemoveAll(creatingCacheDir)
		}
	})
}

// layerFetcher hands out one image, as a registry would.
type layerFetcher struct{ img v1.Image }

func (f layerFetcher) Pull(context.Context, string) (v1.Image, error) {
	if f.img == nil {
		return nil, errors.New("no registry in this test")
	}
	return f.img, nil
}

var (
	creatingCacheOnce sync.Once
	creatingCacheDir  string
	creatingCacheErr  error
)

// imageCache returns an image cache that holds creatingImage, pulled once.
func imageCache(t *testing.T) string {
	t.Helper()
	creatingCacheOnce.Do(func() {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		data := bytes.Repeat([]byte("x"), 2048)
		for d := range creatingDirs {
			dir := fmt.Sprintf("d%02d/", d)
			_ = tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755})
			for f := range creatingFiles {
				_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sf%03d", dir, f), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
				_, _ = tw.Write(data)
			}
		}
		if creatingCacheErr = tw.Close(); creatingCacheErr != nil {
			return
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
		if err != nil {
			creatingCacheErr = err
			return
		}
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			creatingCacheErr = err
			return
		}
		if creatingCacheDir, creatingCacheErr = os.MkdirTemp("", "upstream-image-cache-"); creatingCacheErr != nil {
			return
		}
		_, creatingCacheErr = image.PullWithFetcher(context.Background(), creatingImage, image.NewCache(creatingCacheDir), layerFetcher{img: img})
	})
	if creatingCacheErr != nil {
		t.Fatal(creatingCacheErr)
	}
	return creatingCacheDir
}

// blockingHandler is a logger that parks the goroutine that logs: the
// embedder then waits inside gc.BeforeCreate's collection to be killed.
type blockingHandler struct{}

func (blockingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (blockingHandler) Handle(context.Context, slog.Record) error {
	testproc.Say("in-check")
	select {}
}
func (h blockingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h blockingHandler) WithGroup(string) slog.Handler      { return h }

// blockingSpawner spawns through the default spawner, as released
// libkrun does, then parks: the embedder is killed right after the spawn.
type blockingSpawner struct{}

func (blockingSpawner) Spawn(ctx context.Context, cfg runner.Config) (runner.ProcessHandle, error) {
	p, err := runner.DefaultSpawner{}.Spawn(ctx, cfg)
	if err != nil {
		return nil, err
	}
	_ = p // the embedder is killed before it would return it
	testproc.Say("spawned")
	select {}
}

// ownSpawner starts the runner itself, as an embedder's own
// runner.Spawner may: not through runner.SpawnProcess, so without the
// lease.
type ownSpawner struct{}

type ownProcess struct{ cmd *exec.Cmd }

func (p ownProcess) Stop(context.Context) error { return p.cmd.Process.Kill() }
func (p ownProcess) IsAlive() bool              { return p.cmd.Process.Signal(syscall.Signal(0)) == nil }
func (p ownProcess) PID() int                   { return p.cmd.Process.Pid }

func (ownSpawner) Spawn(_ context.Context, cfg runner.Config) (runner.ProcessHandle, error) {
	arg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.RunnerPath, string(arg))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return ownProcess{cmd: cmd}, nil
}

// releasedRun runs released microvm.Run as an embedder does, with the one
// check; stop names where it parks to be killed ("" for nowhere).
func releasedRun(ctx context.Context, stop, root, dataDir, cache string) (*VM, error) {
	park := func(where string) {
		if stop == where {
			testproc.Say(where)
			select {}
		}
	}
	logger := slog.New(slog.DiscardHandler)
	if stop == "in-check" {
		logger = slog.New(blockingHandler{})
	}
	checker := preflight.NewEmpty()
	checker.Register(preflight.Check{Name: "go-microvm-gc", Required: true,
		Run: gc.BeforeCreate(root, gc.WithCreating(dataDir), gc.WithLogger(logger))})
	var spawner runner.Spawner = runner.DefaultSpawner{}
	switch stop {
	case "spawned":
		spawner = blockingSpawner{}
	case "own-spawner":
		spawner = ownSpawner{}
	}
	return Run(ctx, creatingImage,
		WithName(filepath.Base(dataDir)),
		WithDataDir(dataDir),
		WithPreflightChecker(checker),
		WithImageCache(image.NewCache(cache)),
		WithImageFetcher(layerFetcher{}),
		WithBackend(libkrun.NewBackend(libkrun.WithRunnerPath(creatingRunner), libkrun.WithSpawner(spawner))),
		WithRootFSHook(func(string, *image.OCIConfig) error {
			park("in-hook")
			if stop == "fail-in-hook" {
				return errors.New("the embedder's hook failed")
			}
			return nil
		}),
		WithPostBoot(func(context.Context, *VM) error { park("saved"); return nil }),
	)
}

// helperReleasedRun is an embedder process: args are where to park, the
// root, the data directory, the image cache and the runner.
func helperReleasedRun(args []string) int {
	stop, root, dataDir, cache := args[0], args[1], args[2], args[3]
	creatingRunner = args[4]
	testproc.Say("running")
	vm, err := releasedRun(context.Background(), stop, root, dataDir, cache)
	if err != nil {
		testproc.Say("error: %v", err)
		return 1
	}
	testproc.Say("%s %d", testproc.Ready, vm.RunnerPID())
	select {}
}

// startEmbedder starts an embedder process that parks at stop.
func startEmbedder(t *testing.T, stop, root, dataDir string) *testproc.Proc {
	t.Helper()
	return testproc.Start(t, "released-run", []string{stop, root, dataDir, imageCache(t), creatingRunner})
}

// flockFree runs util-linux's `flock -n dir true`: whether another
// process could take the run lease on dir right now.
func flockFree(t *testing.T, dir string) bool {
	t.Helper()
	err := exec.Command("flock", "-n", dir, "true").Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return false
	}
	if err != nil {
		t.Fatalf("flock -n %s: %v", dir, err)
	}
	return true
}

// waitUntil polls cond, failing after testproc.Guard (a hang, never a
// measure of speed).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testproc.Guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// killRunner SIGKILLs the runner recorded in dir's state, if any, and
// waits for it to be gone.
func killRunner(t *testing.T, dir string) {
	t.Helper()
	s, err := state.ReadFile(filepath.Join(dir, state.FileName))
	if err != nil || s.PID <= 0 {
		return
	}
	_ = syscall.Kill(-s.PID, syscall.SIGKILL)
	waitUntil(t, "the runner to die", func() bool { return syscall.Kill(s.PID, 0) != nil })
}

// countFiles counts the regular files under dir.
func countFiles(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// rootEntries lists root's entries that are not the collector's own.
func rootEntries(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() == gc.LockName() {
			continue
		}
		if e.Name() == gc.TrashName {
			if sub, _ := os.ReadDir(filepath.Join(root, e.Name())); len(sub) == 0 {
				continue
			}
		}
		names = append(names, e.Name())
	}
	return names
}

// nextCreation runs released Run in this process for root/next, checks
// that it reclaimed everything else under root, then removes its VM the
// released way (vm.Remove) and checks that nothing is left.
func nextCreation(t *testing.T, root string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testproc.Guard)
	defer cancel()
	next := filepath.Join(root, "next")
	vm, err := releasedRun(ctx, "", root, next, imageCache(t))
	if err != nil {
		t.Fatalf("next Run: %v", err)
	}
	// The check's deletion work has a budget: what did not fit waits in
	// the trash, out of the data directories, for the next collection.
	left := rootEntries(t, root)
	if trash := slices.Index(left, gc.TrashName); trash >= 0 {
		t.Logf("the check's budget left work in the trash")
		left = slices.Delete(left, trash, trash+1)
	}
	if len(left) != 1 || left[0] != "next" {
		t.Errorf("after the next creation the root holds %v, want only [next]", left)
	}
	if err := vm.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if state.Kept(next) != nil {
		t.Error("Remove left the creator's lease kept")
	}
	if _, err := gc.Collect(root); err != nil {
		t.Fatal(err)
	}
	if left := rootEntries(t, root); len(left) != 0 {
		t.Errorf("after Remove and a collection the root holds %v", left)
	}
}

// An embedder SIGKILLed at any instant of released Run, from inside the
// check to after the state save, leaves its data directory marked and
// protected only while its runner lives; the next creation reclaims it
// whole, and nothing is left once that one is removed.
func TestRun_CreatingKilled(t *testing.T) {
	for _, stop := range []string{"in-check", "clone", "in-hook", "spawned", "saved", "ready"} {
		t.Run(stop, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "killed")
			unlockRoot := func() {}
			if stop == "in-check" {
				// The check's collection skips a root another collector
				// holds, and logs that: there the embedder parks.
				f, err := os.OpenFile(filepath.Join(root, gc.LockName()), os.O_RDWR|os.O_CREATE, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
					t.Fatal(err)
				}
				unlockRoot = func() { _ = f.Close() }
			}
			h := startEmbedder(t, stop, root, dir)
			h.Expect("running")
			cloned := -1
			switch stop {
			case "clone":
				work := filepath.Join(dir, "rootfs-work")
				waitUntil(t, "the clone to start", func() bool { _, err := os.Lstat(work); return err == nil })
				h.Kill()
				cloned = countFiles(work)
			case "ready":
				h.ExpectReady()
				h.Kill()
			default:
				h.Expect(stop)
				h.Kill()
			}
			unlockRoot()
			if cloned >= 0 {
				t.Logf("killed with %d of %d files cloned", cloned, creatingDirs*creatingFiles)
			}
			s, err := state.ReadFile(filepath.Join(dir, state.FileName))
			if err != nil || !s.Leased {
				t.Fatalf("state left by the killed embedder: %+v, %v; want the run marker", s, err)
			}
			if s.PID > 0 {
				// Its runner outlives it and holds the lease.
				if flockFree(t, dir) {
					t.Fatal("flock -n took the lease of a VM whose runner lives")
				}
				if s.Runner == nil || s.Runner.StartTime == 0 {
					t.Errorf("runner recorded without its identity: %+v", s)
				}
				if orphans, err := gc.Orphans(root); err != nil || len(orphans) != 0 {
					t.Fatalf("orphans with the runner alive: %+v, %v", orphans, err)
				}
				killRunner(t, dir)
			}
			waitUntil(t, "the lease to be free", func() bool { return flockFree(t, dir) })
			nextCreation(t, root)
		})
	}
}

// A creation held in progress (its embedder parked in a rootfs hook, the
// clone done) is left whole by a collection in another process.
func TestRun_CreatingInProgressUntouched(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "creating")
	h := startEmbedder(t, "in-hook", root, dir)
	h.Expect("running")
	h.Expect("in-hook")
	work := filepath.Join(dir, "rootfs-work")
	before := countFiles(work)
	if before < creatingDirs*creatingFiles {
		t.Fatalf("clone holds %d files, want the image's %d", before, creatingDirs*creatingFiles)
	}
	rep, err := gc.Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Reclaimed) != 0 {
		t.Fatalf("a collection reclaimed a creation in progress: %+v", rep.Reclaimed)
	}
	if after := countFiles(work); after != before {
		t.Fatalf("creation in progress lost files: %d, had %d", after, before)
	}
	if flockFree(t, dir) {
		t.Fatal("flock -n took the lease of a creation in progress")
	}
	h.Kill()
	nextCreation(t, root)
}

// The runner released Run started holds the lease (seen with flock -n);
// killed while its creator lives, the VM is kept (the creator may still
// read the rootfs); once the creator is killed too, it is reclaimed.
func TestRun_CreatingRunnerThenCreator(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	h := startEmbedder(t, "", root, dir)
	h.Expect("running")
	pid, err := strconv.Atoi(strings.TrimSpace(h.ExpectReady()))
	if err != nil || pid <= 0 {
		t.Fatalf("runner pid %d: %v", pid, err)
	}
	if flockFree(t, dir) {
		t.Fatal("flock -n took the lease of a running VM")
	}
	killRunner(t, dir)
	if flockFree(t, dir) {
		t.Fatal("lease free while the creator lives")
	}
	cands, err := gc.Scan(root)
	if err != nil || len(cands) != 1 || cands[0].Class != gc.ClassLive {
		t.Fatalf("scan with the runner dead and the creator alive: %+v, %v; want live", cands, err)
	}
	rep, err := gc.Collect(root)
	if err != nil || len(rep.Reclaimed) != 0 {
		t.Fatalf("collection with the creator alive: %+v, %v", rep, err)
	}
	h.Kill()
	waitUntil(t, "the lease to be free", func() bool { return flockFree(t, dir) })
	rep, err = gc.Collect(root)
	if err != nil || len(rep.Reclaimed) != 1 {
		t.Fatalf("collection with runner and creator dead: %+v, %v; want the VM reclaimed", rep, err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s left: %v", dir, err)
	}
}

// A Run that fails after the clone returns with the directory still
// claimed by this process (its creator lives); once the embedder lets go
// (state.Kept(dataDir).Close()), the next collection reclaims it.
func TestRun_CreatingFailed(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "failed")
	ctx, cancel := context.WithTimeout(context.Background(), testproc.Guard)
	defer cancel()
	if _, err := releasedRun(ctx, "fail-in-hook", root, dir, imageCache(t)); err == nil {
		t.Fatal("Run with a failing hook succeeded")
	}
	cands, err := gc.Scan(root)
	if err != nil || len(cands) != 1 || cands[0].Class != gc.ClassLive {
		t.Fatalf("after the failed Run, with its creator alive: %+v, %v; want live", cands, err)
	}
	if err := state.Kept(dir).Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := gc.Collect(root)
	if err != nil || len(rep.Reclaimed) != 1 {
		t.Fatalf("collection after letting go: %+v, %v; want the clone reclaimed", rep, err)
	}
	if left := rootEntries(t, root); len(left) != 0 {
		t.Errorf("after the collection the root holds %v", left)
	}
}

// A runner that an embedder's own spawner starts holds no lease: released
// Run's save of its PID drops the run marker, so once the embedder is
// killed the VM is judged by the released PID rules: kept while that
// runner lives, reclaimed once it is gone.
func TestRun_CreatingOwnSpawner(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	h := startEmbedder(t, "own-spawner", root, dir)
	h.Expect("running")
	h.ExpectReady()
	s, err := state.ReadFile(filepath.Join(dir, state.FileName))
	if err != nil || s.Leased || s.PID <= 0 {
		t.Fatalf("state after released Run's save: %+v, %v; want a pid and no run marker", s, err)
	}
	h.Kill()
	waitUntil(t, "the creator's lease to be free", func() bool { return flockFree(t, dir) })
	if orphans, err := gc.Orphans(root); err != nil || len(orphans) != 0 {
		t.Fatalf("orphans with the runner alive and no lease: %+v, %v", orphans, err)
	}
	killRunner(t, dir)
	rep, err := gc.Collect(root)
	if err != nil || len(rep.Reclaimed) != 1 {
		t.Fatalf("collection with the runner dead: %+v, %v; want the VM reclaimed", rep, err)
	}
}
