// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// guard bounds every wait in the tests; it only fires on a hang.
const guard = 30 * time.Second

// standinPath is the stand-in runner built by TestMain.
var standinPath string

func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") == "1" {
		os.Exit(helperMain())
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "runner-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	standinPath, err = buildStandin(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// buildStandin builds the stand-in runner into dir/bin.
func buildStandin(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	modRoot := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-o", bin+"/", "./internal/cmd/go-microvm-runner")
	cmd.Dir = modRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build stand-in runner: %w\n%s", err, out)
	}
	return filepath.Join(bin, RunnerName), nil
}

// helperMain is the test binary acting as an embedder (or a collector) in
// its own process; it prints one line to stdout when ready.
func helperMain() int {
	ctx := context.Background()
	dir := os.Getenv("DATA_DIR")
	fail := func(err error) int {
		fmt.Printf("ERR %v\n", err)
		return 1
	}
	switch mode := os.Getenv("HELPER_MODE"); mode {
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
		fmt.Printf("READY %d\n", pid)
		if os.Getenv("HELPER_EXIT") == "1" {
			return 0
		}
		// The test SIGKILLs us here.
		time.Sleep(time.Hour)
	case "spawn-unrecorded":
		// The runner starts, and we are SIGKILLed before recording it.
		testHookStarted = func(pid int) {
			fmt.Printf("READY %d\n", pid)
			time.Sleep(time.Hour)
		}
		c, err := NewClaim(ctx, dir, WithoutCollect())
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
		fmt.Printf("READY %d\n", p.PID())
	case "gclock":
		l := flock.New(filepath.Join(os.Getenv("ROOT"), gc.LockName))
		ok, err := l.TryLock()
		if err != nil || !ok {
			return fail(fmt.Errorf("take gc lock: ok=%v: %v", ok, err))
		}
		fmt.Println("READY 0")
		time.Sleep(time.Hour)
	default:
		return fail(fmt.Errorf("unknown HELPER_MODE %q", mode))
	}
	return 0
}

// collectLoop runs gc.Collect over ROOT until the file COLLECT_STOP
// exists, appending to COLLECT_LOG each change of the class it reports
// for dir and every reclaimed path. It prints READY after its first pass.
func collectLoop(dir string) int {
	log, err := os.OpenFile(os.Getenv("COLLECT_LOG"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Printf("ERR %v\n", err)
		return 1
	}
	defer log.Close()
	last := gc.Class("")
	for pass := 0; ; pass++ {
		rep, err := gc.Collect(os.Getenv("ROOT"))
		if err != nil {
			fmt.Printf("ERR %v\n", err)
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
			fmt.Println("READY 0")
		}
		if _, err := os.Lstat(os.Getenv("COLLECT_STOP")); err == nil {
			return 0
		}
	}
}

// helper is a running helper process.
type helper struct {
	cmd *exec.Cmd
	pid int // what it printed after READY
}

// startHelper re-executes the test binary as a helper in mode and waits
// for its READY line.
func startHelper(t *testing.T, mode string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"GO_WANT_HELPER_PROCESS=1", "HELPER_MODE=" + mode}, env...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lines:
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "READY ")
		if !ok {
			t.Fatalf("helper %s: %q", mode, line)
		}
		if h.pid, err = strconv.Atoi(rest); err != nil {
			t.Fatalf("helper %s: %q: %v", mode, line, err)
		}
	case <-time.After(guard):
		t.Fatalf("helper %s not ready within %s", mode, guard)
	}
	return h
}

// kill SIGKILLs the helper and reaps it.
func (h *helper) kill(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = h.cmd.Wait()
}

// wait waits for the helper to exit on its own and fails on a non-zero exit.
func (h *helper) wait(t *testing.T) {
	t.Helper()
	if err := h.cmd.Wait(); err != nil {
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
