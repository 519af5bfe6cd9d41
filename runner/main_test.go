// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// guard bounds every wait in the tests; it only fires on a hang.
const guard = 30 * time.Second

// standinPath is the stand-in runner built by TestMain.
var standinPath string

// helperModes are the embedders and collectors the tests start as
// helper processes; each reads its parameters from its environment.
var helperModes = []string{"spawn", "released-spawn", "clone", "spawn-unrecorded", "collect-loop", "attach-stop", "gclock"}

func TestMain(m *testing.M) {
	for _, mode := range helperModes {
		testproc.Register(mode, func([]string) int { return helperMain(mode) })
	}
	if !testproc.IsHelper() {
		standinPath = testproc.MustBuildRunner()
	}
	testproc.Main(m)
}

// helperMain is the test binary acting as an embedder (or a collector) in
// its own process; it prints one line to stdout when ready.
func helperMain(mode string) int {
	ctx := context.Background()
	dir := os.Getenv("DATA_DIR")
	fail := func(err error) int {
		testproc.Say("error: %v", err)
		return 1
	}
	switch mode {
	case "spawn", "clone":
		c, err := NewClaim(ctx, dir, WithoutCollect())
		if err != nil {
			return fail(err)
		}
		if err := makeRootfs(dir); err != nil {
			return fail(err)
		}
		pid := 0
		if mode == "spawn" {
			p, err := c.Spawn(ctx, Config{RootPath: filepath.Join(dir, "rootfs-work"), RunnerPath: os.Getenv("RUNNER")})
			if err != nil {
				return fail(err)
			}
			pid = p.PID()
		}
		testproc.Say("%s %d", testproc.Ready, pid)
		if os.Getenv("HELPER_EXIT") == "1" {
			return 0
		}
		// The test SIGKILLs us here.
		time.Sleep(time.Hour)
	case "released-spawn":
		// Released microvm.Run: the check with WithCreating, the clone,
		// the runner started by SpawnProcess (as its libkrun backend
		// does), then the state save it does after the spawn.
		if err := gc.BeforeCreate(os.Getenv("ROOT"), gc.WithCreating(dir))(ctx); err != nil {
			return fail(err)
		}
		if err := makeRootfs(dir); err != nil {
			return fail(err)
		}
		p, err := SpawnProcess(ctx, Config{RootPath: filepath.Join(dir, "rootfs-work"), RunnerPath: os.Getenv("RUNNER"),
			VMLogPath: filepath.Join(dir, "vm.log"), ConsoleLog: filepath.Join(dir, "console.log")})
		if err != nil {
			return fail(err)
		}
		ls, err := state.NewManager(dir).LoadAndLock(ctx)
		if err != nil {
			return fail(err)
		}
		ls.Active = true
		ls.PID = p.PID()
		ls.PIDStartTime = time.Now().UTC()
		if err := ls.Save(); err != nil {
			return fail(err)
		}
		ls.Release()
		testproc.Say("%s %d", testproc.Ready, p.PID())
		time.Sleep(time.Hour)
	case "spawn-unrecorded":
		// The runner starts, and we are SIGKILLed before recording it.
		started := func(pid int) {
			testproc.Say("%s %d", testproc.Ready, pid)
			time.Sleep(time.Hour)
		}
		c, err := NewClaim(ctx, dir, WithoutCollect(), withHooks(hooks{started: started}))
		if err != nil {
			return fail(err)
		}
		if err := makeRootfs(dir); err != nil {
			return fail(err)
		}
		_, err = c.Spawn(ctx, Config{RootPath: filepath.Join(dir, "rootfs-work"), RunnerPath: os.Getenv("RUNNER")})
		return fail(fmt.Errorf("spawn returned past the hook: %v", err))
	case "collect-loop":
		return collectLoop(dir)
	case "attach-stop":
		p, err := Attach(dir, WithStopTimeout(guard))
		if err != nil {
			return fail(err)
		}
		if err := p.Stop(ctx); err != nil {
			return fail(err)
		}
		testproc.Say("%s %d", testproc.Ready, p.PID())
	case "gclock":
		l := flock.New(filepath.Join(os.Getenv("ROOT"), gc.LockName()))
		ok, err := l.TryLock()
		if err != nil || !ok {
			return fail(fmt.Errorf("take gc lock: ok=%v: %v", ok, err))
		}
		testproc.Say("%s 0", testproc.Ready)
		time.Sleep(time.Hour)
	default:
		return fail(fmt.Errorf("unknown HELPER_MODE %q", mode))
	}
	return 0
}

// collectLoop runs gc.Collect over ROOT until the file COLLECT_STOP
// exists, appending to COLLECT_LOG each change of the class it reports
// for dir and every reclaimed path. It says ready after its first pass.
func collectLoop(dir string) int {
	log, err := os.OpenFile(os.Getenv("COLLECT_LOG"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		testproc.Say("error: %v", err)
		return 1
	}
	defer log.Close()
	last := gc.Class("")
	for pass := 0; ; pass++ {
		rep, err := gc.Collect(os.Getenv("ROOT"))
		if err != nil {
			testproc.Say("error: %v", err)
			return 1
		}
		for _, k := range rep.Kept {
			if k.Path == dir && k.Class != last {
				last = k.Class
				fmt.Fprintln(log, k.Class)
			}
		}
		for _, r := range rep.Reclaimed {
			fmt.Fprintln(log, "reclaimed", r.Path)
		}
		if pass == 0 {
			testproc.Say("%s 0", testproc.Ready)
		}
		if _, err := os.Lstat(os.Getenv("COLLECT_STOP")); err == nil {
			return 0
		}
	}
}

// helper is a running helper process and the PID it said ready with.
type helper struct {
	*testproc.Proc
	pid int
}

// startHelper re-executes the test binary as the helper mode, with env
// added to its environment, and waits for its "ready PID" line.
func startHelper(t *testing.T, mode string, env ...string) *helper {
	t.Helper()
	h := &helper{Proc: testproc.Start(t, mode, nil, env...)}
	line, ok := h.Next()
	rest, isReady := strings.CutPrefix(line, testproc.Ready+" ")
	if !ok || !isReady {
		t.Fatalf("helper %s: %q", mode, line)
	}
	var err error
	if h.pid, err = strconv.Atoi(rest); err != nil {
		t.Fatalf("helper %s: %q: %v", mode, line, err)
	}
	return h
}

// kill SIGKILLs the helper and reaps it.
func (h *helper) kill(*testing.T) { h.Kill() }

// wait waits for the helper to exit on its own and fails on a non-zero exit.
func (h *helper) wait(t *testing.T) {
	t.Helper()
	if err := h.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// makeRootfs stands in for the rootfs clone.
func makeRootfs(dir string) error {
	work := filepath.Join(dir, "rootfs-work")
	if err := os.MkdirAll(filepath.Join(work, "etc"), 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"etc/hostname": "vm\n",
		"bin-sh":       strings.Repeat("x", 8192),
		"empty":        "",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// waitFor polls cond until it holds, failing after guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pollUntil polls cond until it holds or guard passes, and reports
// whether it held; unlike waitFor it may run outside the test goroutine.
func pollUntil(cond func() bool) bool {
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// readReady waits for the stand-in's ready file and returns its pids.
func readReady(t *testing.T, path string) []int {
	t.Helper()
	var data []byte
	waitFor(t, "stand-in ready file "+path, func() bool {
		var err error
		data, err = os.ReadFile(path)
		return err == nil
	})
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("ready file %q: %v", data, err)
		}
		pids = append(pids, n)
	}
	return pids
}

// exited reports whether pid is gone or a zombie: the process has exited
// (orphans here are reparented to an init that may never reap them).
func exited(pid int) bool {
	info, err := procinfo.Lookup(pid)
	return errors.Is(err, procinfo.ErrNotExist) || (err == nil && info.Zombie)
}

// reaped reports whether pid, a child of this process, is gone: then every
// thread of it has exited and released its descriptors.
func reaped(pid int) bool {
	_, err := procinfo.Lookup(pid)
	return errors.Is(err, procinfo.ErrNotExist)
}

// killOnCleanup SIGKILLs pid's group at the end of the test if pid still
// names the process that holds it now.
func killOnCleanup(t *testing.T, pid int) {
	t.Helper()
	info, err := procinfo.Lookup(pid)
	if err != nil {
		return
	}
	t.Cleanup(func() {
		now, err := procinfo.Lookup(pid)
		if err == nil && !now.Zombie && now.StartTime == info.StartTime {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// loadState reads dir's state.
func loadState(t *testing.T, dir string) *state.State {
	t.Helper()
	st, err := state.NewManager(dir).Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// writeState creates dir and edits its state under the state lock.
func writeState(t *testing.T, dir string, edit func(*state.State)) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ls, err := state.NewManager(dir).LoadAndLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Release()
	edit(ls.State)
	if err := ls.Save(); err != nil {
		t.Fatal(err)
	}
}

// leaseHeld probes dir's run lease.
func leaseHeld(t *testing.T, dir string) bool {
	t.Helper()
	held, err := state.ProbeLease(dir)
	if err != nil {
		t.Fatal(err)
	}
	return held
}

// leaseFreed reports whether the lease on dir is free, polling until it
// is or guard has passed. A lease this process dropped by closing its
// descriptor can stay held for an instant: another test's goroutine may
// be forking a helper, and the child holds a copy of every descriptor
// until its exec closes them. A lease still held after guard was leaked.
func leaseFreed(t *testing.T, dir string) bool {
	t.Helper()
	deadline := time.Now().Add(guard)
	for leaseHeld(t, dir) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// snapshot lists every entry under root with its size, leaving out the
// collector's own names at the top.
func snapshot(t *testing.T, root string) map[string]int64 {
	t.Helper()
	files := make(map[string]int64)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if filepath.Dir(rel) == "." && strings.HasPrefix(rel, gc.OwnPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files[rel] = fi.Size()
		if d.IsDir() {
			files[rel] = -1
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// candidate finds dir in a scan of root.
func candidate(t *testing.T, root, dir string) gc.Candidate {
	t.Helper()
	cands, err := gc.Scan(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cands {
		if c.Path == dir {
			return c
		}
	}
	t.Fatalf("scan of %s has no candidate %s: %+v", root, dir, cands)
	return gc.Candidate{}
}

// reclaimed reports whether rep reclaimed dir.
func reclaimed(rep *gc.Report, dir string) bool {
	for _, o := range rep.Reclaimed {
		if o.Path == dir {
			return true
		}
	}
	return false
}

// testCtx is a context bounded by guard.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}
