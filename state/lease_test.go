// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/testproc"
)

// waitFree polls ProbeLease until the lease on dir is free, failing after
// guard.
func waitFree(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		held, err := ProbeLease(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !held {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease on %s still held %v after it was dropped", dir, guard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLeaseInheritedByChild is the runner hand-over: a parent takes the
// lease, starts a child that inherits it, closes its own copy and exits.
// The child keeps the lease, even across a rename of the directory, and
// SIGKILL of the child frees it.
func TestLeaseInheritedByChild(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	parent := startHelper(t, "lease", dir)
	parent.Expect("waiting")
	parent.Expect("leased")
	parent.Send("spawn")
	pid, err := strconv.Atoi(strings.TrimPrefix(parent.Expect("child "), "child "))
	if err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		// Only when the test failed before its own SIGKILL: once the child
		// is dead its PID may belong to someone else.
		if !killed {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	parent.Expect("ok")
	parent.WaitOK()

	if held, err := ProbeLease(dir); err != nil || !held {
		t.Fatalf("after the parent exited: ProbeLease = %v, %v; want held by the child", held, err)
	}
	if _, err := TryLease(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLease while the child holds: %v, want ErrLocked", err)
	}

	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if held, err := ProbeLease(moved); err != nil || !held {
		t.Fatalf("after the rename: ProbeLease(new name) = %v, %v; want held", held, err)
	}
	if _, err := TryLease(moved); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLease(new name) while the child holds: %v, want ErrLocked", err)
	}
	if held, err := ProbeLease(dir); err != nil || held {
		t.Errorf("ProbeLease(old, missing name) = %v, %v; want false, nil", held, err)
	}

	killed = true
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFree(t, moved)
	l, err := TryLease(moved)
	if err != nil {
		t.Fatalf("TryLease after the child died: %v", err)
	}
	l.Close()
}

func TestLeaseInProcess(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := AcquireLease(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if held, err := ProbeLease(dir); err != nil || !held {
		t.Errorf("ProbeLease = %v, %v; want held", held, err)
	}
	// flock belongs to the open file description, so a second open in the
	// same process is refused like any other holder.
	if _, err := TryLease(dir); !errors.Is(err, ErrLocked) {
		t.Errorf("second TryLease: %v, want ErrLocked", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = within(t, "AcquireLease", func() (*Lease, error) { return AcquireLease(ctx, dir) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AcquireLease while held: %v, want DeadlineExceeded", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Polled: a child forked meanwhile by another test holds a copy of
	// our descriptor until its exec (see waitFree).
	waitFree(t, dir)
}

func TestLeaseErrors(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	file := filepath.Join(root, "file")
	write(t, file, "")
	link := filepath.Join(root, "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(root, "missing")

	if _, err := TryLease(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("TryLease(missing): %v, want fs.ErrNotExist", err)
	}
	if _, err := AcquireLease(t.Context(), missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("AcquireLease(missing): %v, want fs.ErrNotExist", err)
	}
	for _, p := range []string{file, link} {
		if _, err := TryLease(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("TryLease(%s): %v, want an error naming it", p, err)
		}
		if _, err := ProbeLease(p); err == nil {
			t.Errorf("ProbeLease(%s) succeeded, want an error", p)
		}
	}
	if held, err := ProbeLease(missing); err != nil || held {
		t.Errorf("ProbeLease(missing) = %v, %v; want false, nil", held, err)
	}
}

// TestLeaseWaiterFollowsRecreatedDirectory: process A holds the lease, B
// waits; A removes the directory and creates a new one at the same path,
// then lets go. B must hold the new directory, not the dead one. When the
// directory is removed for good, B reports fs.ErrNotExist.
func TestLeaseWaiterFollowsRecreatedDirectory(t *testing.T) {
	t.Parallel()
	for _, action := range []string{"recreate", "rmdir"} {
		t.Run(action, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			a := startHelper(t, "lease", dir)
			a.Expect("waiting")
			a.Expect("leased")
			b := startHelper(t, "lease", dir)
			b.Expect("waiting")
			settle()

			a.Do(action)
			a.Do("close")
			a.WaitOK()
			if action == "rmdir" {
				b.Expect("notexist")
				b.WaitOK()
				return
			}
			line := b.Expect("leased ")
			if got, want := strings.TrimPrefix(line, "leased "), strconv.FormatUint(inode(t, dir), 10); got != want {
				t.Fatalf("B holds inode %s, the path names %s", got, want)
			}
			if held, err := ProbeLease(dir); err != nil || !held {
				t.Fatalf("ProbeLease = %v, %v; B holds a dead directory", held, err)
			}
			b.Do("close")
			b.WaitOK()
		})
	}
}

// TestLeaseInodeRecheck replaces the directory in the window between a
// successful flock and the inode check.
func TestLeaseInodeRecheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		replace func(t *testing.T, dir string)
		// wantErr is nil when the lease must be taken on the new inode.
		wantErr []error
	}{
		{"removed and recreated", func(t *testing.T, dir string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"renamed and replaced", func(t *testing.T, dir string) {
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"replaced by a symlink", func(t *testing.T, dir string) {
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(dir+".old", dir); err != nil {
				t.Fatal(err)
			}
		}, []error{syscall.ELOOP, syscall.ENOTDIR}},
		{"removed", func(t *testing.T, dir string) {
			if err := os.Remove(dir); err != nil {
				t.Fatal(err)
			}
		}, []error{fs.ErrNotExist}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			calls := 0
			l, err := tryLease(dir, func(string) {
				calls++
				if calls == 1 {
					tt.replace(t, dir)
				}
			})
			if tt.wantErr != nil {
				if l != nil || !isAny(err, tt.wantErr) {
					t.Fatalf("TryLease: %v, want one of %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if calls != 2 {
				t.Errorf("flock succeeded %d times, want 2 (a retry after the replacement)", calls)
			}
			fi, err := l.File().Stat()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fi.Sys().(*syscall.Stat_t).Ino, inode(t, dir); got != want {
				t.Errorf("lease on inode %d, the path names %d", got, want)
			}
			if held, err := ProbeLease(dir + ".old"); err != nil || held {
				t.Errorf("old directory: ProbeLease = %v, %v; want free", held, err)
			}
		})
	}
}

func isAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// TestLeaseLeakIsLoud: a Lease dropped without Close is reported with
// slog, naming its directory. It runs in a helper process, which ends
// with status 3 as it logs.
func TestLeaseLeakIsLoud(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := testproc.CommandContext(ctx, "leak-lease", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("helper: %v, want the exit status 3 of its log line\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	if !strings.HasPrefix(stdout.String(), "leased\n") {
		t.Errorf("helper stdout %q, want it to have leased first", &stdout)
	}
	const msg = "state.Lease garbage collected without Close"
	logged := "level=ERROR msg=\"" + msg
	if out := stderr.String(); !strings.Contains(out, logged) || !strings.Contains(out, "dir="+dir) {
		t.Errorf("stderr lacks the slog error %q naming dir=%s:\n%s", logged, dir, out)
	}
	if held, err := ProbeLease(dir); err != nil || held {
		t.Errorf("ProbeLease after the helper died = %v, %v; want free", held, err)
	}
}

// TestLeaseClosedIsQuiet: a Lease closed with Close, or through its File,
// is not reported when it is collected.
func TestLeaseClosedIsQuiet(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)

	dir := t.TempDir()
	func() {
		l, err := TryLease(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	waitFree(t, dir)
	func() {
		l, err := TryLease(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.File().Close(); err != nil {
			t.Fatal(err)
		}
	}()
	// Both Leases are garbage once these return. A sentinel made after
	// them tells when a collection has run the cleanups queued with it.
	done := make(chan struct{})
	func() {
		sentinel := &struct{ p *int }{}
		runtime.AddCleanup(sentinel, func(done chan struct{}) { close(done) }, done)
	}()
	timeout := time.After(guard)
	for {
		runtime.GC()
		select {
		case <-done:
			runtime.GC()
			runtime.GC()
			if strings.Contains(logs.String(), "garbage collected without Close") {
				t.Errorf("a closed Lease was reported as leaked:\n%s", logs.String())
			}
			return
		case <-timeout:
			t.Fatalf("no collection ran the sentinel's cleanup within %v", guard)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the cleanup goroutine's writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Keep holds a lease under one path at a time, Kept finds it under any
// spelling of that directory, and Close drops it from the table.
func TestKeepKept(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(root, link); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(link, "vm")
	l, err := TryLease(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Keep(other); err != nil {
		t.Fatal(err)
	}
	if Kept(dir) != l || Kept(other) != l {
		t.Fatal("kept lease not found under both spellings")
	}
	if err := l.Keep(dir); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if Kept(dir) != nil || Kept(other) != nil {
		t.Fatal("closed lease still kept")
	}
	if held, err := ProbeLease(dir); err != nil || held {
		t.Fatalf("lease held after Close: %v, %v", held, err)
	}
}
