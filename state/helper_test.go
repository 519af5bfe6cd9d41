// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/internal/hangtest"
)

// guard bounds every wait on another process or on a call that must not
// hang. It is a deadline for failing, never a duration that is asserted.
const guard = 10 * time.Second

// TestMain turns the test binary into a helper process when
// GO_WANT_HELPER_PROCESS is set, so that locks are tested across real
// processes with real exits and real SIGKILLs.
func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") == "1" {
		os.Exit(helperMain(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// helperMain runs one helper. It prints progress lines on stdout and takes
// commands from stdin; end of stdin (the test died) ends it.
func helperMain(args []string) int {
	if len(args) < 1 {
		fmt.Println("error: no mode")
		return 2
	}
	switch args[0] {
	case "lock":
		return helperLock(args[1])
	case "lease":
		return helperLease(args[1])
	case "swap-lock":
		// Moves the lock file away and locks a fresh one, as a writer
		// that finds the lock file replaced would end up holding it.
		lock := filepath.Join(args[1], LockFileName)
		if err := os.Rename(lock, lock+".old"); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return helperLock(args[1])
	case "leak-lease":
		return helperLeakLease(args[1])
	case "lease-child":
		// Holds the inherited lease on fd 3 by doing nothing, for at
		// most a minute, so a failed test leaves nothing behind for long.
		time.Sleep(time.Minute)
		return 0
	}
	fmt.Println("error: unknown mode", args[0])
	return 2
}

func helperLock(dir string) int {
	fmt.Println("waiting")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ls, err := NewManager(dir).LoadAndLock(ctx)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("locked")
	lock := filepath.Join(dir, LockFileName)
	return commandLoop(func(cmd, arg string) error {
		switch cmd {
		case "unlink":
			return os.Remove(ls.m.LockPath())
		case "rename":
			return os.Rename(lock, lock+".old")
		case "save":
			ls.Name = arg
			return ls.Save()
		case "release":
			return ls.Close()
		}
		return fmt.Errorf("unknown command %q", cmd)
	})
}

func helperLease(dir string) int {
	fmt.Println("waiting")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := AcquireLease(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Println("notexist")
		return 0
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fi, err := l.File().Stat()
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("leased", fi.Sys().(*syscall.Stat_t).Ino)
	return commandLoop(func(cmd, arg string) error {
		switch cmd {
		case "rmdir":
			return os.Remove(dir)
		case "recreate":
			// Swap in a new directory atomically (rename over the empty
			// old one), so a waiter polling the path never sees it
			// missing: it must notice the inode change, not ENOENT.
			fresh := dir + ".new"
			if err := os.Mkdir(fresh, 0o700); err != nil {
				return err
			}
			// syscall.Rename, since os.Rename refuses an existing directory.
			return syscall.Rename(fresh, dir)
		case "spawn":
			// The runner's hand-over: the child inherits the lease as fd 3
			// and we drop our own copy, without unlocking, right after.
			c := exec.Command(os.Args[0], "lease-child")
			c.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=1")
			c.ExtraFiles = []*os.File{l.File()}
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := c.Start(); err != nil {
				return err
			}
			fmt.Println("child", c.Process.Pid)
			return l.Close()
		case "close":
			return l.Close()
		}
		return fmt.Errorf("unknown command %q", cmd)
	})
}

// commandLoop runs "cmd [arg]" lines from stdin, answering "ok" or
// "error: ...". It returns after "release", "close" or "spawn", or at end of
// input.
func commandLoop(run func(cmd, arg string) error) int {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		if err := run(cmd, arg); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("ok")
		switch cmd {
		case "release", "close", "spawn":
			return 0
		}
	}
	return 0
}

// helper is a running helper process seen from the test.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startHelper re-executes the test binary as a helper running mode on dir.
// The helper is killed when the test ends.
func startHelper(t *testing.T, mode, dir string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], mode, dir)
	cmd.Env = append(os.Environ(), "GO_WANT_HELPER_PROCESS=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return h
}

// expect waits (within guard) for the helper's next line and returns it;
// the line must start with prefix.
func (h *helper) expect(prefix string) string {
	h.t.Helper()
	select {
	case line, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("helper exited while the test expected %q", prefix)
		}
		if !strings.HasPrefix(line, prefix) {
			h.t.Fatalf("helper said %q, want a line starting with %q", line, prefix)
		}
		return line
	case <-time.After(guard):
		h.t.Fatalf("helper did not say %q within %v", prefix, guard)
	}
	return ""
}

// do sends a command and waits for its "ok".
func (h *helper) do(cmd string) {
	h.t.Helper()
	if _, err := fmt.Fprintln(h.stdin, cmd); err != nil {
		h.t.Fatalf("send %q: %v", cmd, err)
	}
	h.expect("ok")
}

// wait waits (within guard) for the helper to exit successfully.
func (h *helper) wait() {
	h.t.Helper()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			h.t.Fatalf("helper: %v", err)
		}
	case <-time.After(guard):
		h.t.Fatalf("helper did not exit within %v", guard)
	}
}

// within runs f and fails the test if it has not returned within guard:
// the proof that a call does not hang.
func within[T any](t *testing.T, what string, f func() (T, error)) (T, error) {
	t.Helper()
	return hangtest.Within(t, guard, what, f)
}

// inode returns path's inode number, not following a symlink.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// tryFlock takes an exclusive flock on f without blocking; false means
// someone else holds it.
func tryFlock(f *os.File) (ok bool, err error) {
	err = fstree.WithFd(f, func(fd int) error {
		ferr := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if errors.Is(ferr, unix.EWOULDBLOCK) {
			return nil
		}
		ok = ferr == nil
		return ferr
	})
	return ok, err
}

// probeLock reports whether dataDir's state lock is held right now, with
// the collector's probe (it creates nothing; a missing lock file is not
// held): the tests' oracle for who holds the lock.
func probeLock(dataDir string) (held bool, err error) {
	return datadir.ProbeLockPath(filepath.Join(dataDir, LockFileName))
}

// helperLeakLease takes the lease on dir, logging with slog to stderr,
// drops the Lease without closing it and collects garbage until the leak
// report ends the process. It exits 1 if that never happens.
func helperLeakLease(dir string) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if _, err := TryLease(dir); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("leased")
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("error: the dropped Lease was never reported")
	return 1
}
