// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofrs/flock"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/internal/standin"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// guard bounds every wait on another process; it is never an assertion
// about speed, only a way to fail instead of hanging.
const guard = 20 * time.Second

func withHooks(h hooks) Option {
	return func(o *options) { o.hooks = h }
}

// runnerPath is the stand-in runner (package internal/testproc builds
// it once, before any test starts), named go-microvm-runner.
var runnerPath string

// helperModes are the helpers this package's tests start; each takes one
// argument.
var helperModes = []string{"sleep", "lease", "lock", "rootlock", "collect-report", "collectreport", "scan-stream", "scan-slice", "collect", "collect-pause", "creating", "collect-killed"}

func TestMain(m *testing.M) {
	for _, mode := range helperModes {
		testproc.Register(mode, func(args []string) int {
			arg := ""
			if len(args) > 0 {
				arg = args[0]
			}
			return helperMain(mode, arg)
		})
	}
	if !testproc.IsHelper() {
		runnerPath = testproc.MustBuildRunner()
	}
	testproc.Main(m, cleanupBench)
}

// helperMain is the test binary re-executed as another process. Helpers
// that hold something print "ready" once they hold it and keep it until
// their stdin closes (the test ended) or they are killed.
func helperMain(mode, arg string) int {
	hold := func() int {
		testproc.Hold()
		return 0
	}
	ctx := context.Background()
	switch mode {
	case "sleep":
		return hold()
	case "lease":
		var leases []*state.Lease
		for _, dir := range strings.Split(arg, "\n") {
			l, err := state.AcquireLease(ctx, dir)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			leases = append(leases, l)
		}
		defer func() {
			for _, l := range leases {
				l.Close()
			}
		}()
		return hold()
	case "lock":
		ls, err := state.NewManager(arg).LoadAndLock(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer ls.Release()
		return hold()
	case "rootlock":
		fl := flock.New(filepath.Join(arg, LockName()))
		if ok, err := fl.TryLock(); !ok || err != nil {
			fmt.Fprintln(os.Stderr, "root lock:", ok, err)
			return 1
		}
		defer fl.Unlock()
		return hold()
	case "collect-report":
		return collectReport(arg)
	case "collectreport":
		return helperCollectReport(arg)
	case "scan-stream", "scan-slice":
		return helperScan(mode, arg)
	case "collect-killed":
		// Killed as it starts to delete a committed rootfs-work from the
		// trash, the longest step of a reclaim.
		_, _ = Collect(arg, withHooks(hooks{emptying: func(string) { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }}))
		return 1
	case "collect-pause":
		return collectPaused(arg, os.Getenv("GC_TEST_PAUSE"))
	case "creating":
		// arg is "root\ndataDir": the released-Run embedder's check, then
		// the clone it starts.
		root, dir, _ := strings.Cut(arg, "\n")
		if err := BeforeCreate(root, WithCreating(dir))(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		etc := filepath.Join(dir, rootfsWorkName, "etc")
		if err := os.MkdirAll(etc, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.WriteFile(filepath.Join(etc, "hostname"), []byte("vm\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return hold()
	case "collect":
		testproc.Say("start")
		if _, err := Collect(arg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
	return 2
}

// startHelper starts the test binary as the helper mode on arg and,
// unless waitFor is "", waits for it to print waitFor. The helper is
// killed and reaped when the test ends.
func startHelper(t testing.TB, mode, arg, waitFor string) *testproc.Proc {
	t.Helper()
	h := testproc.Start(t, mode, []string{arg})
	if waitFor != "" {
		h.SkipTo(waitFor)
	}
	return h
}

// startRunner starts the stand-in runner serving a fresh root of its own
// and waits until it is ready; it runs until the test ends.
func startRunner(t testing.TB, env ...string) *exec.Cmd {
	t.Helper()
	return startRunnerAt(t, runnerPath, env...)
}

// startRunnerAt is startRunner for the runner executable at path. The
// wait matters: until the new program runs, /proc can show the child
// mid-exec, with the runner's executable but no argv.
func startRunnerAt(t testing.TB, path string, env ...string) *exec.Cmd {
	t.Helper()
	cfg, err := json.Marshal(map[string]string{"root_path": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(path, string(cfg))
	cmd.Env = append(os.Environ(), append(env, standin.EnvReady+"="+ready)...)
	startCmd(t, cmd)
	waitFor(t, "the runner to be ready", func() bool { return exists(t, ready) })
	return cmd
}

// startCmd starts cmd as a child that runs until the test ends.
func startCmd(t testing.TB, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

func lookup(t testing.TB, pid int) procinfo.Info {
	t.Helper()
	info, err := procinfo.Lookup(pid)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// writeJSON writes v as the state file of dir.
func writeJSON(t testing.TB, dir string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, state.FileName), string(data))
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// makeVM lays out a data directory as go-microvm leaves it: a rootfs-work
// tree, the logs, a leftover temp save, the lock file and the state s.
func makeVM(t testing.TB, dir string, s *state.State) {
	t.Helper()
	work := filepath.Join(dir, rootfsWorkName)
	for i := range 3 {
		writeFile(t, filepath.Join(work, "etc", fmt.Sprintf("file%d", i)), strings.Repeat("x", 5000))
	}
	writeFile(t, filepath.Join(work, "usr", "lib", "deep", "lib.so"), strings.Repeat("y", 20000))
	// A guest filesystem can hold anything, including what looks like a
	// data directory: it must never be a candidate.
	writeJSON(t, filepath.Join(work, "var", "fake"), orphanState())
	writeFile(t, filepath.Join(dir, consoleLogName), "console\n")
	writeFile(t, filepath.Join(dir, vmLogName), "vm\n")
	writeFile(t, filepath.Join(dir, "state-12345.json.tmp"), "{")
	writeFile(t, filepath.Join(dir, state.LockFileName), "")
	writeJSON(t, dir, s)
}

// orphanState is a record whose run ended uncleanly: marker set. With the
// lease free it is an orphan whatever its PID says.
func orphanState() *state.State {
	now := time.Now()
	return &state.State{Version: 1, Active: true, Name: "vm", PID: 1, PIDStartTime: now, CreatedAt: now, Leased: true}
}

func exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return err == nil
}

func mustExist(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if !exists(t, p) {
			t.Errorf("%s is gone, want it kept", p)
		}
	}
}

func mustNotExist(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if exists(t, p) {
			t.Errorf("%s still exists, want it removed", p)
		}
	}
}

// collect runs Collect and fails the test on an error or a reported
// failure.
func collect(t testing.TB, root string, opts ...Option) *Report {
	t.Helper()
	rep, err := Collect(root, opts...)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	for _, e := range rep.Errors {
		t.Errorf("Collect reported %v", e)
	}
	return rep
}

// waitLeaseFree waits until the lease on dir is free. A lease this
// process dropped by closing its descriptor can stay held for an instant:
// a child another test is forking holds a copy of every descriptor until
// its exec closes them. A lease still held after guard was leaked.
func waitLeaseFree(t testing.TB, dir string) {
	t.Helper()
	waitFor(t, "the lease on "+dir+" to be free", func() bool {
		held, err := state.ProbeLease(dir)
		if err != nil {
			t.Fatal(err)
		}
		return !held
	})
}

// scanOne scans root and returns the single candidate at path.
func scanOne(t testing.TB, root, path string) Candidate {
	t.Helper()
	cands, err := Scan(root)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	for _, c := range cands {
		if c.Path == path {
			return c
		}
	}
	t.Fatalf("Scan found no candidate %s among %v", path, cands)
	return Candidate{}
}

// snapshot describes every entry below root (type, size, mode, mtime,
// content of regular files and link targets), to prove that nothing
// changed.
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%s %d %s", fi.Mode(), fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			desc += " " + string(data)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		snap[path] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func sameSnapshot(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	for p, d := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s: %s disappeared", what, p)
		} else if a != d {
			t.Errorf("%s: %s changed: %s -> %s", what, p, d, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared", what, p)
		}
	}
}
