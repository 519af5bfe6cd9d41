// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// openPTY opens a pseudo-terminal: what the command writes to tty the test
// reads from master, and what the test writes to master the command reads.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// ptyReader collects everything written to the terminal.
type ptyReader struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	more chan struct{}
	done chan struct{}
}

func readPTY(master *os.File) *ptyReader {
	r := &ptyReader{more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			r.mu.Lock()
			r.buf.Write(b[:n])
			r.mu.Unlock()
			select {
			case r.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *ptyReader) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

// waitFor waits until the terminal shows s.
func (r *ptyReader) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(guard)
	for !strings.Contains(r.String(), s) {
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("the terminal never showed %q; it shows:\n%q", s, r.String())
		}
	}
}

// stoppedVM writes a cleanly stopped VM whose state was last written long
// ago: --stopped --older-than 1d makes it reclaimable.
func stoppedVM(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "rootfs-work"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, state.FileName)
	st := `{"version":1,"active":false,"name":"s","image":"alpine:3.20","cpus":1,"memory_mb":512,"pid_start_time":"0001-01-01T00:00:00Z","created_at":"2024-01-01T00:00:00Z"}`
	if err := os.WriteFile(p, []byte(st), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

// runOnTerminal runs the command in-process with stdin and stderr on a
// terminal, as an operator runs it, answering the question (if any) with
// answer. It returns the exit code, stdout, and what the terminal showed.
func runOnTerminal(t *testing.T, answer string, progressAfter time.Duration, args ...string) (int, string, string) {
	t.Helper()
	master, tty := openPTY(t)
	term := readPTY(master)
	var out bytes.Buffer
	a := newApp(context.Background(), tty, &out, tty)
	if !a.stdinTTY || !a.stderrTTY {
		t.Fatalf("the pty is not seen as a terminal")
	}
	a.progressAfter = progressAfter
	done := make(chan int, 1)
	go func() { done <- a.execute(args) }()
	if answer != "" {
		term.waitFor(t, "[y/N] ")
		if _, err := master.Write([]byte(answer + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	var code int
	select {
	case code = <-done:
	case <-time.After(guard):
		t.Fatalf("the command did not end within %s; terminal:\n%q", guard, term.String())
	}
	// Everything written to the terminal is readable from master now; a
	// marker written last tells when it has all been read.
	if _, err := tty.Write([]byte("<end>")); err != nil {
		t.Fatal(err)
	}
	term.waitFor(t, "<end>")
	return code, out.String(), strings.TrimSuffix(term.String(), "<end>")
}

// TestConfirmStopped: on a terminal, collect --stopped asks before it
// deletes stopped VMs; "n" keeps them (orphans still go), "y" deletes
// them, -f never asks.
func TestConfirmStopped(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) string {
		root := filepath.Join(t.TempDir(), "root")
		stoppedVM(t, filepath.Join(root, "stopped"))
		makeOrphan(t, filepath.Join(root, "dead"), 2)
		return root
	}
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }

	t.Run("no", func(t *testing.T) {
		root := setup(t)
		code, out, term := runOnTerminal(t, "n", time.Hour, "collect", "--root", root, "--stopped", "--older-than", "1d")
		if code != 0 || !exists(filepath.Join(root, "stopped")) || exists(filepath.Join(root, "dead")) {
			t.Errorf("exit %d; the stopped VM must stay and the orphan go\n%s\n%s", code, out, term)
		}
		if !strings.Contains(term, "stopped") || !strings.Contains(term, "Delete 1 stopped VM? [y/N]") || !strings.Contains(term, "Keeping the stopped VMs") {
			t.Errorf("terminal:\n%s", term)
		}
	})
	t.Run("yes", func(t *testing.T) {
		root := setup(t)
		code, out, term := runOnTerminal(t, "y", time.Hour, "collect", "--root", root, "--stopped", "--older-than", "1d")
		if code != 0 || exists(filepath.Join(root, "stopped")) || exists(filepath.Join(root, "dead")) {
			t.Errorf("exit %d; both must go\n%s\n%s", code, out, term)
		}
	})
	t.Run("force", func(t *testing.T) {
		root := setup(t)
		code, out, term := runOnTerminal(t, "", time.Hour, "collect", "--root", root, "--stopped", "--older-than", "1d", "-f")
		if code != 0 || exists(filepath.Join(root, "stopped")) || strings.Contains(term, "[y/N]") {
			t.Errorf("exit %d; -f must not ask\n%s\n%s", code, out, term)
		}
	})
	t.Run("no terminal", func(t *testing.T) {
		root := setup(t)
		cmd := gcCommand(t, "collect", "--root", root, "--stopped", "--older-than", "1d")
		cmd.Stdin = strings.NewReader("n\n")
		code, out, stderr := runGC(t, cmd)
		if code != 0 || exists(filepath.Join(root, "stopped")) || strings.Contains(stderr, "[y/N]") {
			t.Errorf("exit %d; without a terminal collect proceeds\n%s\n%s", code, out, stderr)
		}
	})
}

// TestProgress: on a terminal a collection that runs long enough shows
// progress on stderr, drawn in place and erased at the end; with -q, or
// when stderr is not a terminal, nothing.
func TestProgress(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) string {
		root := filepath.Join(t.TempDir(), "root")
		for i := 0; i < 5; i++ {
			makeOrphan(t, filepath.Join(root, fmt.Sprintf("vm%d", i)), 3)
		}
		return root
	}
	// The delay before progress shows is zero here, so that the test
	// does not depend on how long the collection takes.
	code, out, term := runOnTerminal(t, "", 0, "collect", "--root", setup(t))
	if code != 0 || !strings.Contains(term, "\r\x1b[Kcollect: ") || !strings.HasSuffix(term, "\r\x1b[K") {
		t.Errorf("exit %d; terminal shows no progress line erased at the end:\n%q\n%s", code, term, out)
	}
	code, _, term = runOnTerminal(t, "", 0, "collect", "-q", "--root", setup(t))
	if code != 0 || term != "" {
		t.Errorf("exit %d; -q must show nothing, terminal:\n%q", code, term)
	}
	// A collection shorter than the delay shows nothing.
	code, _, term = runOnTerminal(t, "", time.Hour, "collect", "--root", setup(t))
	if code != 0 || term != "" {
		t.Errorf("exit %d; a short run must show nothing, terminal:\n%q", code, term)
	}
}

// TestDryRunLockDenied: a dry run as a user who could not take the root
// lock says so, in the table and in JSON.
func TestDryRunLockDenied(t *testing.T) {
	t.Parallel()
	// Everything the other user runs or reads must be reachable by it.
	dir := testproc.PublicTempDir(t)
	exe := testproc.CopyTestBinary(t, dir, "go-microvm-gc")
	root := filepath.Join(dir, "root")
	makeOrphan(t, filepath.Join(root, "vm"), 1)
	for _, args := range [][]string{{"collect", "-n", "--root", root}, {"collect", "-n", "--root", root, "--json"}} {
		cmd := testproc.Nobody(t, exe, args...)
		cmd.Env = append(os.Environ(), envDataDir+"=", envRoot+"=", "HOME="+dir)
		code, stdout, stderr := runGC(t, cmd)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
		if !strings.Contains(stdout, "could not take the root lock") && !strings.Contains(stdout, `"lock_error": "`) {
			t.Errorf("%v does not say the lock could not be taken:\n%s", args, stdout)
		}
	}
}

// TestDryRunLockPlanted: a dry run where another user planted a file
// under this user's root lock name says the lock could not be taken.
func TestDryRunLockPlanted(t *testing.T) {
	t.Parallel()
	dir := testproc.PublicTempDir(t)
	exe := testproc.CopyTestBinary(t, dir, "go-microvm-gc")
	root := filepath.Join(dir, "root")
	makeOrphan(t, filepath.Join(root, "vm"), 1)
	if err := os.Chmod(root, 0o1777); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(root, gc.LockName())
	if out, err := testproc.Nobody(t, "sh", "-c", "umask 0; touch "+lock).CombinedOutput(); err != nil {
		t.Fatalf("plant %s: %v: %s", lock, err, out)
	}
	cmd := exec.Command(exe, "collect", "-n", "--root", root)
	cmd.Env = append(os.Environ(), envDataDir+"=", envRoot+"=", "HOME="+dir)
	code, stdout, stderr := runGC(t, cmd)
	if code != 0 || !strings.Contains(stdout, "could not take the root lock") || !strings.Contains(stdout, "reclaim in place without it") {
		t.Errorf("exit %d; the dry run does not say the lock could not be taken:\n%s%s", code, stdout, stderr)
	}
}

// TestListUnreadableRoot checks that list, run by a user who cannot read
// the root, exits 1 with the error and does not call the root empty.
func TestListUnreadableRoot(t *testing.T) {
	t.Parallel()
	dir := testproc.PublicTempDir(t)
	exe := testproc.CopyTestBinary(t, dir, "go-microvm-gc")
	root := filepath.Join(dir, "root")
	makeOrphan(t, filepath.Join(root, "vm"), 1)
	if err := os.Chmod(root, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := testproc.Nobody(t, exe, "list", "--root", root)
	cmd.Env = append(os.Environ(), envDataDir+"=", envRoot+"=", "HOME="+dir)
	code, stdout, stderr := runGC(t, cmd)
	if code != exitError {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitError, stdout, stderr)
	}
	if !strings.Contains(stderr, "permission denied") {
		t.Errorf("stderr does not name the error:\n%s", stderr)
	}
	if strings.Contains(stdout, "No data directories") || !strings.Contains(stdout, "could not be read") {
		t.Errorf("stdout does not say the root could not be read:\n%s", stdout)
	}
}

// TestErrorsNameTheVM: a removal that fails reports the data directory
// the tree came from, once (not again as a log line), and the next run
// says its leftover trash entry is from an earlier run.
func TestErrorsNameTheVM(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to set the immutable flag (chattr +i)")
	}
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		t.Skip("no chattr")
	}
	root := filepath.Join(t.TempDir(), "root")
	makeOrphan(t, filepath.Join(root, "vm1"), 1)
	stuck := filepath.Join(root, "vm1", "rootfs-work", "d00", "f0")
	if out, err := exec.Command(chattr, "+i", stuck).CombinedOutput(); err != nil {
		t.Skipf("this filesystem has no immutable flag: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command(chattr, "-R", "-i", root).Run() })

	code, stdout, stderr := runGC(t, gcCommand(t, "collect", "--root", root))
	if code != exitError {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Errors:\n  vm1: ") {
		t.Errorf("the error does not name the VM directory:\n%s", stdout)
	}
	if n := strings.Count(stdout+stderr, "operation not permitted"); n != 1 {
		t.Errorf("the error is printed %d times, want once:\nstdout:\n%s\nstderr:\n%s", n, stdout, stderr)
	}
	code, stdout, _ = runGC(t, gcCommand(t, "collect", "--root", root))
	if code != exitError || !strings.Contains(stdout, "(trash left by an earlier run)") {
		t.Errorf("second run: exit %d\n%s", code, stdout)
	}
	// -q prints nothing but the errors, on stderr.
	code, stdout, stderr = runGC(t, gcCommand(t, "collect", "-q", "--root", root))
	if code != exitError || stdout != "" || strings.Count(stderr, "operation not permitted") != 1 {
		t.Errorf("collect -q: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}
