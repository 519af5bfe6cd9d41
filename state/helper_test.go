// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/hangtest"
	"github.com/stacklok/go-microvm/internal/sysat"
	"github.com/stacklok/go-microvm/internal/testproc"
)

// guard bounds every wait on another process or on a call that must not
// hang. It is a deadline for failing, never a duration that is asserted.
const guard = 10 * time.Second

// helperModes are the helpers the tests start, so that locks are tested
// across real processes with real exits and real SIGKILLs.
var helperModes = []string{"lock", "lease", "swap-lock", "leak-lease", "lease-child"}

func TestMain(m *testing.M) {
	for _, mode := range helperModes {
		testproc.Register(mode, func(args []string) int {
			return helperMain(append([]string{mode}, args...))
		})
	}
	testproc.Main(m)
}

// helperMain runs one helper, args[0] on args[1]. It prints progress
// lines on stdout and takes commands from stdin; end of stdin (the test
// died) ends it.
func helperMain(args []string) int {
	if len(args) < 2 && args[0] != "lease-child" {
		fmt.Println("error: no directory")
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
	return testproc.Serve(func(cmd, arg string) (bool, error) {
		switch cmd {
		case "unlink":
			return false, os.Remove(ls.m.LockPath())
		case "rename":
			return false, os.Rename(lock, lock+".old")
		case "save":
			ls.Name = arg
			return false, ls.Save()
		case "release":
			return true, ls.Close()
		}
		return false, fmt.Errorf("unknown command %q", cmd)
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
	return testproc.Serve(func(cmd, arg string) (bool, error) {
		switch cmd {
		case "rmdir":
			return false, os.Remove(dir)
		case "recreate":
			// Swap in a new directory atomically (rename over the empty
			// old one), so a waiter polling the path never sees it
			// missing: it must notice the inode change, not ENOENT.
			fresh := dir + ".new"
			if err := os.Mkdir(fresh, 0o700); err != nil {
				return false, err
			}
			// syscall.Rename, since os.Rename refuses an existing directory.
			return false, syscall.Rename(fresh, dir)
		case "spawn":
			// The runner's hand-over: the child inherits the lease as fd 3
			// and we drop our own copy, without unlocking, right after.
			c := testproc.Command("lease-child")
			c.ExtraFiles = []*os.File{l.File()}
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := c.Start(); err != nil {
				return true, err
			}
			fmt.Println("child", c.Process.Pid)
			return true, l.Close()
		case "close":
			return true, l.Close()
		}
		return false, fmt.Errorf("unknown command %q", cmd)
	})
}

// startHelper re-executes the test binary as the helper mode on dir.
// The helper is killed when the test ends.
func startHelper(t *testing.T, mode, dir string) *testproc.Proc {
	t.Helper()
	return testproc.Start(t, mode, []string{dir})
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
	// The files locked here are regular files and directories, never in
	// non-blocking mode: Fd changes nothing about them.
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

// probeLock reports whether dataDir's state lock is held right now, with
// the collector's probe (it creates nothing; a missing lock file is not
// held): the tests' oracle for who holds the lock.
func probeLock(dataDir string) (held bool, err error) {
	fd, err := unix.Open(dataDir, sysat.DirFlags, 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	return datadir.NewDir(fd, dataDir).ProbeLock()
}

// helperLeakLease takes the lease on dir, logging with slog to stderr,
// drops the Lease without closing it and collects garbage until the leak
// report ends the process. It exits 1 if that never happens.
func helperLeakLease(dir string) int {
	slog.SetDefault(slog.New(slog.NewTextHandler(exitAfterWrite{}, nil)))
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

// exitAfterWrite copies a log line to stderr and ends the process with
// status 3: the leaked Lease's report.
type exitAfterWrite struct{}

func (exitAfterWrite) Write(p []byte) (int, error) {
	_, _ = os.Stderr.Write(p)
	os.Exit(3)
	return len(p), nil
}
