// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// This file is not part of this module: scripts/upstream-check.sh copies it
// into the root package of a released go-microvm tree, where it runs the
// released microvm.Run, with the released tests' fake backend, and
// gc.BeforeCreate registered as a preflight check.

package microvm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/preflight"
	"github.com/stacklok/go-microvm/runner"
	"github.com/stacklok/go-microvm/state"
)

var (
	standinOnce sync.Once
	standinBin  string
	standinErr  error
)

// buildStandin builds the stand-in runner (internal/cmd/go-microvm-runner,
// copied in by the script) once, before any test starts a deadline.
func buildStandin(t *testing.T) string {
	t.Helper()
	standinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "upstream-standin-")
		if err != nil {
			standinErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "./internal/cmd/go-microvm-runner")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			standinErr = errors.New("build stand-in runner: " + err.Error() + "\n" + string(out))
			return
		}
		standinBin = filepath.Join(dir, "go-microvm-runner")
	})
	if standinErr != nil {
		t.Fatal(standinErr)
	}
	return standinBin
}

// spawnStandin claims dir (without its own collection), gives it a
// rootfs-work and starts the stand-in runner holding the run lease.
func spawnStandin(t *testing.T, ctx context.Context, bin, dir string) *runner.Process {
	t.Helper()
	claim, err := runner.NewClaim(ctx, dir, runner.WithoutCollect(), runner.WithName(filepath.Base(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer claim.Abort()
	work := filepath.Join(dir, "rootfs-work", "etc")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "hostname"), make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	proc, err := claim.Spawn(ctx, runner.Config{
		RootPath:   filepath.Join(dir, "rootfs-work"),
		ConsoleLog: filepath.Join(dir, "console.log"),
		RunnerPath: bin,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Stop(context.Background()) })
	return proc
}

// The released Run, with gc.BeforeCreate registered first among its
// preflight checks, reclaims the crashed siblings under the root before
// the next check runs, and leaves the live sibling and its runner whole.
func TestRun_GCBeforeCreate(t *testing.T) {
	bin := buildStandin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	root := t.TempDir()
	live := filepath.Join(root, "live")
	crashed := filepath.Join(root, "crashed")
	releasedCrash := filepath.Join(root, "released-crash")

	liveProc := spawnStandin(t, ctx, bin, live)

	// A crash: the creator lets go (as it does when it exits), the runner
	// is SIGKILLed, its lease goes with it, and its run marker stays set.
	crashedProc := spawnStandin(t, ctx, bin, crashed)
	if err := crashedProc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(-crashedProc.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for crashedProc.IsAlive() {
		select {
		case <-ctx.Done():
			t.Fatal("crashed runner did not die")
		case <-time.After(10 * time.Millisecond):
		}
	}

	// A crash recorded the way the released Run records a VM: active, a
	// pid, pid_start_time, no marker; that pid has exited since.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(releasedCrash, "rootfs-work"), 0o700); err != nil {
		t.Fatal(err)
	}
	ls, err := state.NewManager(releasedCrash).LoadAndLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ls.State.Active = true
	ls.State.Name = "released-crash"
	ls.State.PID = dead.Process.Pid
	ls.State.PIDStartTime = time.Now().UTC()
	if err := ls.Save(); err != nil {
		t.Fatal(err)
	}
	ls.Release()

	checker := preflight.NewEmpty()
	checker.Register(preflight.Check{Name: "go-microvm-gc", Run: gc.BeforeCreate(root), Required: true})
	var seenByNext []string
	checker.Register(preflight.Check{
		Name: "after-gc",
		Run: func(context.Context) error {
			for _, d := range []string{crashed, releasedCrash, live} {
				if _, err := os.Lstat(d); err == nil {
					seenByNext = append(seenByNext, filepath.Base(d))
				}
			}
			return nil
		},
		Required: true,
	})
	checker.Register(preflight.DiskSpaceCheck(root, 0))

	rootfsDir := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(rootfsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	vm, err := Run(ctx, "test:latest",
		WithDataDir(filepath.Join(root, "new")),
		WithName("new"),
		WithPreflightChecker(checker),
		WithRootFSPath(rootfsDir),
		WithNetProvider(&mockNetProvider{sockPath: "/tmp/fake.sock"}),
		WithBackend(&mockBackend{startHandle: &mockVMHandle{id: "4242", alive: true}}),
	)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if vm == nil {
		t.Fatal("Run returned no VM")
	}

	if len(seenByNext) != 1 || seenByNext[0] != "live" {
		t.Errorf("the check after gc.BeforeCreate saw %v, want only [live]", seenByNext)
	}
	for _, d := range []string{crashed, releasedCrash, filepath.Join(root, gc.TrashName)} {
		if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after Run: %v", d, err)
		}
	}
	for _, p := range []string{
		filepath.Join(live, "go-microvm-state.json"),
		filepath.Join(live, "rootfs-work", "etc", "hostname"),
		filepath.Join(root, "new", "go-microvm-state.json"),
	} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if !liveProc.IsAlive() {
		t.Error("live runner is gone")
	}
	if held, err := state.ProbeLease(live); err != nil || !held {
		t.Errorf("live run lease held = %v, %v; want held", held, err)
	}
}
