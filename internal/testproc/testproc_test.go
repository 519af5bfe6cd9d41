// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package testproc_test

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/stacklok/go-microvm/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("hold", func(args []string) int {
		testproc.Hold(args...)
		return 0
	})
	testproc.Register("serve", func([]string) int {
		n := 0
		return testproc.Serve(func(verb, arg string) (bool, error) {
			switch verb {
			case "add":
				k, err := strconv.Atoi(arg)
				n += k
				return false, err
			case "quit":
				testproc.Say("sum %d", n)
				return true, nil
			}
			return false, fmt.Errorf("unknown command %q", verb)
		})
	})
	testproc.Register("exit", func(args []string) int {
		code, _ := strconv.Atoi(args[0])
		return code
	})
	testproc.Main(m)
}

// TestHold: a holding helper says ready with its detail and exits 0 once
// its stdin closes.
func TestHold(t *testing.T) {
	t.Parallel()
	p := testproc.Start(t, "hold", []string{"42"})
	if got := p.ExpectReady(); got != "42" {
		t.Fatalf("ready detail %q, want 42", got)
	}
	p.CloseStdin()
	p.WaitOK()
}

// TestServe: commands are answered in order, an error ends the helper
// with status 1, and the last command ends it with 0.
func TestServe(t *testing.T) {
	t.Parallel()
	p := testproc.Start(t, "serve", nil)
	p.Do("add 2")
	p.Do("add 3")
	p.Send("quit")
	if line := p.Expect("sum "); line != "sum 5" {
		t.Errorf("said %q, want sum 5", line)
	}
	p.Expect("ok")
	p.WaitOK()

	bad := testproc.Start(t, "serve", nil)
	bad.Send("add x")
	bad.Expect("error: ")
	var ee *exec.ExitError
	if err := bad.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("after an error: %v, want exit status 1", err)
	}
}

// TestKill: Kill SIGKILLs a helper that would never exit by itself and
// reaps it; a second Kill is harmless.
func TestKill(t *testing.T) {
	t.Parallel()
	p := testproc.Start(t, "hold", nil)
	p.ExpectReady()
	p.Kill()
	p.Kill()
	if !p.Exited() {
		t.Fatal("not reaped after Kill")
	}
	ws := p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("ended %v, want SIGKILL", p.Cmd.ProcessState)
	}
}

// TestExitCode: a helper's result is the process's exit status.
func TestExitCode(t *testing.T) {
	t.Parallel()
	p := testproc.Start(t, "exit", []string{"7"})
	if _, ok := p.Next(); ok {
		t.Error("the exiting helper printed a line")
	}
	var ee *exec.ExitError
	if err := p.Wait(); !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Errorf("Wait: %v, want exit status 7", err)
	}
}

// TestCopyExecutableWhileForking: copies are executed as soon as they are
// written while other goroutines fork without pause, so that a fork
// during a copy would leave its descriptor open for writing in a child
// and the exec would fail with ETXTBSY.
func TestCopyExecutableWhileForking(t *testing.T) {
	t.Parallel()
	src, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true command to copy")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					_ = exec.Command(src).Run()
				}
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	dir := t.TempDir()
	for i := range testproc.Size(200, 2000) {
		dst := filepath.Join(dir, strconv.Itoa(i))
		testproc.CopyExecutable(t, src, dst)
		if err := exec.Command(dst).Run(); err != nil {
			t.Fatalf("run copy %d: %v", i, err)
		}
	}
}
