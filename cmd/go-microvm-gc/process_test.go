// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// guard bounds every wait on another process; it is never an assertion
// about speed, only a way to fail instead of hanging.
const guard = 60 * time.Second

// gcCommand is the real command: this test binary run as the helper
// go-microvm-gc (see TestMain), with its signal handling and exit codes,
// never looking at the real default roots.
func gcCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := testproc.Command("go-microvm-gc", args...)
	cmd.Args[0] = "go-microvm-gc"
	cmd.Env = append(cmd.Env, envDataDir+"=", envRoot+"=", "HOME="+t.TempDir())
	return cmd
}

// runGC runs the command to its end and returns its exit code and output.
func runGC(t *testing.T, cmd *exec.Cmd) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &out
	}
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return code, out.String(), errb.String()
}

// deadState is a released-format record of an active VM whose runner PID
// no process can have: an orphan.
const deadState = `{"version":1,"active":true,"name":"vm","image":"alpine:3.20","cpus":1,"memory_mb":512,"pid":2147483000,"pid_start_time":"0001-01-01T00:00:00Z","created_at":"2024-01-01T00:00:00Z"}`

// makeOrphan writes an orphan data directory at dir with files small
// files in its rootfs-work, spread over up to 8 directories.
func makeOrphan(t *testing.T, dir string, files int) {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs-work")
	for i := 0; i < files; i++ {
		sub := filepath.Join(rootfs, fmt.Sprintf("d%02d", i%8))
		if i < 8 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if files == 0 {
		if err := os.MkdirAll(rootfs, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, state.FileName), []byte(deadState), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestInterrupt sends SIGINT and SIGTERM to a real collecting process: it
// says it was interrupted, reports what it finished, leaves the rest for
// the next run, and exits 130 or 143.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		json bool
	}{
		{syscall.SIGINT, 130, false},
		{syscall.SIGTERM, 143, true},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(t.TempDir(), "root")
			const orphans = 40
			for i := 0; i < orphans; i++ {
				makeOrphan(t, filepath.Join(root, fmt.Sprintf("vm%02d", i)), testproc.Size(10, 300))
			}
			args := []string{"collect", "--root", root}
			if tc.json {
				args = append(args, "--json")
			}
			cmd := gcCommand(t, args...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait until the collector is reclaiming (its trash exists),
			// then freeze it, so that the signal certainly arrives while
			// work remains.
			trash := filepath.Join(root, gc.TrashName)
			deadline := time.Now().Add(guard)
			for {
				if _, err := os.Lstat(trash); err == nil {
					break
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("the collector made no trash within %s", guard)
				}
				time.Sleep(time.Millisecond)
			}
			if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			left := remaining(t, root)
			t.Logf("%d of %d orphans left when the collector was frozen", left, orphans)
			if left < orphans/2 {
				// Not a failure of the command: the machine let it run
				// far before it was frozen. Nothing to interrupt.
				cmd.Process.Signal(syscall.SIGCONT)
				cmd.Wait()
				t.Skipf("only %d orphans were left when the collector was frozen", left)
			}
			if err := cmd.Process.Signal(tc.sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("exit: %v, want code %d\nstdout:\n%s\nstderr:\n%s", err, tc.code, out.String(), errb.String())
			}
			stderr := errb.String()
			if !strings.Contains(stderr, "interrupted") || strings.Contains(stderr, "context canceled") {
				t.Errorf("stderr does not just say interrupted:\n%s", stderr)
			}
			after := remaining(t, root)
			if after == 0 {
				t.Errorf("no orphan left: the collector was not interrupted")
			}
			if tc.json {
				var doc collectJSON
				if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
					t.Fatalf("stdout is not JSON: %v\n%s", err, out.String())
				}
				if !doc.Interrupted {
					t.Errorf(`JSON has "interrupted": false`)
				}
				if len(doc.Reclaimed) != orphans-after {
					t.Errorf("JSON reports %d reclaimed, %d of %d orphans are gone", len(doc.Reclaimed), orphans-after, orphans)
				}
			} else {
				stdout := out.String()
				if !strings.Contains(stdout, "Interrupted after reclaiming ") || strings.Contains(stdout, "budget") {
					t.Errorf("summary does not say interrupted:\n%s", stdout)
				}
			}
			// The next run finishes the work.
			code, stdout, stderr := runGC(t, gcCommand(t, "collect", "--root", root))
			if code != 0 || remaining(t, root) != 0 {
				t.Errorf("the next collect: exit %d, %d orphans left\n%s%s", code, remaining(t, root), stdout, stderr)
			}
			if _, err := os.Lstat(trash); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("trash left after the next run: %v", err)
			}
		})
	}
}

// remaining counts the orphans whose state file is still there.
func remaining(t *testing.T, root string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(root, "vm*", state.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestWriteErrors: output that cannot be written fails the run with exit 1
// and a message on stderr, for every kind of output.
func TestWriteErrors(t *testing.T) {
	t.Parallel()
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer full.Close()
	root := filepath.Join(t.TempDir(), "root")
	makeOrphan(t, filepath.Join(root, "vm"), 3)
	for _, args := range [][]string{
		{"collect", "--root", root},
		{"list", "--root", root},
		{"list", "--root", root, "--json"},
		{"collect", "--root", root, "--json"},
		{"--help"},
		{"completion", "bash"},
	} {
		cmd := gcCommand(t, args...)
		cmd.Stdout = full
		code, _, stderr := runGC(t, cmd)
		if code != exitError || !strings.Contains(stderr, "write output") {
			t.Errorf("%v > /dev/full: exit %d, want 1 with a message; stderr:\n%s", args, code, stderr)
		}
	}
	if remaining(t, root) != 0 {
		t.Errorf("the first collect did not reclaim the orphan")
	}
}

// TestHostileNames: a directory name with an escape sequence and a newline
// is quoted in the table, so it neither colours the terminal nor adds a
// fake row, and stays exact in JSON.
func TestHostileNames(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	name := "evil\x1b[31mRED\nfake  live  lease-held"
	makeOrphan(t, filepath.Join(root, name), 1)
	code, stdout, stderr := runGC(t, gcCommand(t, "list", "--root", root))
	if code != 0 {
		t.Fatalf("list: exit %d\n%s", code, stderr)
	}
	if strings.ContainsAny(stdout, "\x1b") || strings.Contains(stdout, "\nfake") {
		t.Errorf("raw control characters reached the table:\n%q", stdout)
	}
	if !strings.Contains(stdout, `"evil\x1b[31mRED\nfake  live  lease-held"`) {
		t.Errorf("the name is not quoted in the table:\n%s", stdout)
	}
	if n := strings.Count(stdout, "\n"); n != 4 {
		t.Errorf("table has %d lines, want 4 (root, header, one row, summary):\n%s", n, stdout)
	}
	_, stdout, _ = runGC(t, gcCommand(t, "list", "--root", root, "--json"))
	var doc listJSON
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Dirs) != 1 || doc.Dirs[0].Path != filepath.Join(root, name) {
		t.Errorf("JSON path is not exact: %+v", doc.Dirs)
	}
	code, stdout, _ = runGC(t, gcCommand(t, "collect", "--root", root))
	if code != 0 || strings.ContainsAny(stdout, "\x1b") || !strings.Contains(stdout, `"evil\x1b[31mRED`) {
		t.Errorf("collect: exit %d, output not quoted:\n%q", code, stdout)
	}
}

// TestNoHiddenModes: the shipped command is only the command. The old
// demo switch does nothing, and the stand-in runner is not linked in.
func TestNoHiddenModes(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	makeOrphan(t, filepath.Join(root, "vm"), 1)
	cmd := gcCommand(t, "list", "--root", root)
	cmd.Env = append(cmd.Env, "GO_MICROVM_GC_DEMO_IDLE=1", "GO_MICROVM_GC_STANDIN=1")
	cmd.Stdin = strings.NewReader("")
	code, stdout, _ := runGC(t, cmd)
	if code != 0 || !strings.Contains(stdout, "vm  ") {
		t.Errorf("list with the old switches set: exit %d\n%s", code, stdout)
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasSuffix(pkg, "/internal/standin") || strings.HasSuffix(pkg, "/demohelper") {
			t.Errorf("the command links %s", pkg)
		}
	}
}

// TestLibraryDeps: the command's libraries stay out of the library
// packages' import graph.
func TestLibraryDeps(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "../../gc", "../../state", "../../runner").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range []string{"github.com/spf13/", "github.com/dustin/", "github.com/cpuguy83/", "github.com/russross/"} {
			if strings.HasPrefix(pkg, bad) {
				t.Errorf("a library package depends on %s", pkg)
			}
		}
	}
}
