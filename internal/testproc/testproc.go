// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package testproc runs the other processes of a multi-process test: the
// test binary re-executed as a named helper, and binaries of this module
// (the stand-in runner) built once before any test starts.
//
// A package registers its helpers and hands TestMain to Main:
//
//	func TestMain(m *testing.M) {
//		testproc.Register("lease", helperLease)
//		testproc.Main(m)
//	}
//
// A helper talks to its test in lines on stdout and reads commands, one a
// line, on stdin. The protocol is the same everywhere: a helper that holds
// something says Ready ("ready", optionally followed by a detail such as a
// PID) once it holds it, and keeps it until its stdin closes (the test
// ended) or it is killed; a helper that serves commands (Serve) answers
// each with "ok" or "error: ...".
//
// Every wait on a process is bounded by Guard (see package hangtest), so a
// test fails instead of hanging; Guard measures nothing.
package testproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/hangtest"
)

// Guard bounds every wait on another process. It is generous on purpose:
// it is never an assertion about speed, only a way to fail instead of
// hanging on a loaded machine.
const Guard = 60 * time.Second

// envHelper names the helper the re-executed test binary runs.
const envHelper = "GO_MICROVM_TEST_HELPER"

// Ready is the line a helper prints once it holds what it was started for.
const Ready = "ready"

var (
	helpersMu sync.Mutex
	helpers   = map[string]func(args []string) int{}
)

// Register makes fn the helper named name: the test binary started by
// Command(name, args...) runs fn(args) and exits with its result instead
// of running tests. Call it from TestMain, before Main.
func Register(name string, fn func(args []string) int) {
	helpersMu.Lock()
	defer helpersMu.Unlock()
	if _, dup := helpers[name]; dup {
		panic("testproc: helper " + name + " registered twice")
	}
	helpers[name] = fn
}

// Main runs the helper the environment names and exits with its code.
// Otherwise it runs the tests, then each of after and removes what Build
// built, and exits with the tests' code.
func Main(m *testing.M, after ...func()) {
	if name := os.Getenv(envHelper); name != "" {
		helpersMu.Lock()
		fn, ok := helpers[name]
		helpersMu.Unlock()
		if !ok {
			fmt.Fprintf(os.Stderr, "testproc: no helper named %q\n", name)
			os.Exit(2)
		}
		os.Exit(fn(os.Args[1:]))
	}
	code := m.Run()
	for _, f := range after {
		f()
	}
	removeBuilt()
	os.Exit(code)
}

// IsHelper reports whether this process is a helper rather than the test
// binary running tests.
func IsHelper() bool { return os.Getenv(envHelper) != "" }

// Command returns the test binary as the helper name with args; the
// caller may add to its environment or prefix it (for example with
// setpriv) before starting it.
func Command(name string, args ...string) *exec.Cmd {
	return CommandContext(context.Background(), name, args...)
}

// CommandContext is Command killed when ctx is done.
func CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		// Linux and Darwin always know; fall back to argv[0], which go
		// test sets to the binary's path.
		exe = os.Args[0]
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), envHelper+"="+name)
	return cmd
}

// Env is the environment entry that makes the test binary the helper
// name, for a command built by hand (for example, a copy of the binary
// run under setpriv).
func Env(name string) string { return envHelper + "=" + name }

// Say prints one protocol line on stdout. Helpers use it.
func Say(format string, args ...any) {
	// A helper whose stdout is gone has no one left to tell.
	_, _ = fmt.Fprintf(os.Stdout, format+"\n", args...)
}

// Hold prints Ready (followed by detail, when given) and blocks until
// stdin closes: the test ended or closed it on purpose. Helpers use it.
func Hold(detail ...string) {
	Say("%s", strings.Join(append([]string{Ready}, detail...), " "))
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// Serve reads commands from stdin, one a line ("verb arg"), and runs
// each with run, answering "ok" or "error: ..." on stdout. It returns the
// helper's exit code: 1 after the first error, 0 after a command run
// reports last, or at the end of stdin. Helpers use it.
func Serve(run func(verb, arg string) (last bool, err error)) int {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		verb, arg, _ := strings.Cut(sc.Text(), " ")
		last, err := run(verb, arg)
		if err != nil {
			Say("error: %v", err)
			return 1
		}
		Say("ok")
		if last {
			return 0
		}
	}
	return 0
}

// Proc is a running helper (or any started command) seen from its test:
// its stdout as lines, its stdin as commands. It is killed and reaped
// when the test ends.
type Proc struct {
	t     testing.TB
	Cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan struct{} // closed once the process is reaped
	quit  chan struct{} // closed when the test ends: stop queueing lines
	err   error         // Wait's result, valid once done is closed
}

// Start starts the helper name with args and returns it.
func Start(t testing.TB, name string, args []string, env ...string) *Proc {
	t.Helper()
	cmd := Command(name, args...)
	cmd.Env = append(cmd.Env, env...)
	return StartCmd(t, cmd)
}

// StartCmd starts cmd with its stdout read as lines and its stdin open
// for commands; cmd.Stderr defaults to the test's stderr. The process is
// killed and reaped when the test ends.
func StartCmd(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	// Pipes of our own rather than StdoutPipe: Wait must not close the
	// reading end while lines are still unread, and reaping runs at once.
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	cmd.Stdout, cmd.Stdin = outW, inR
	err = cmd.Start()
	// The child holds its own copies now; closing ours of pipe ends
	// loses nothing.
	_ = outW.Close()
	_ = inR.Close()
	if err != nil {
		_ = outR.Close()
		_ = inW.Close()
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	p := &Proc{t: t, Cmd: cmd, stdin: inW, lines: make(chan string, 64), done: make(chan struct{}), quit: make(chan struct{})}
	go func() {
		defer outR.Close() // a read end: nothing to lose
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			case <-p.quit:
				// Nobody reads any more; keep draining so the process
				// (or a child that inherited the pipe) never blocks.
				_, _ = io.Copy(io.Discard, outR)
				close(p.lines)
				return
			}
		}
		close(p.lines)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.stop)
	return p
}

// Pid is the process's PID.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Next returns the next line the process prints, and false once its
// stdout closed. It fails the test after Guard.
func (p *Proc) Next() (string, bool) {
	p.t.Helper()
	timer := time.NewTimer(Guard)
	defer timer.Stop()
	select {
	case line, ok := <-p.lines:
		return line, ok
	case <-timer.C:
		p.t.Fatalf("%v printed nothing within %v", p.Cmd.Args, Guard)
		return "", false
	}
}

// Expect returns the next line, which must start with prefix.
func (p *Proc) Expect(prefix string) string {
	p.t.Helper()
	line, ok := p.Next()
	if !ok {
		p.t.Fatalf("%v exited while the test expected %q", p.Cmd.Args, prefix)
	}
	if !strings.HasPrefix(line, prefix) {
		p.t.Fatalf("%v said %q, want a line starting with %q", p.Cmd.Args, line, prefix)
	}
	return line
}

// ExpectReady waits for the Ready line and returns its detail ("" when
// there is none).
func (p *Proc) ExpectReady() string {
	p.t.Helper()
	line := p.Expect(Ready)
	if line != Ready && !strings.HasPrefix(line, Ready+" ") {
		p.t.Fatalf("%v said %q, want %q", p.Cmd.Args, line, Ready)
	}
	return strings.TrimPrefix(strings.TrimPrefix(line, Ready), " ")
}

// SkipTo discards lines until one equals want.
func (p *Proc) SkipTo(want string) {
	p.t.Helper()
	for {
		line, ok := p.Next()
		if !ok {
			p.t.Fatalf("%v exited before printing %q", p.Cmd.Args, want)
		}
		if line == want {
			return
		}
	}
}

// Send writes one line to the process's stdin.
func (p *Proc) Send(line string) {
	p.t.Helper()
	if _, err := fmt.Fprintln(p.stdin, line); err != nil {
		p.t.Fatalf("send %q to %v: %v", line, p.Cmd.Args, err)
	}
}

// Do sends a command and waits for its "ok".
func (p *Proc) Do(cmd string) {
	p.t.Helper()
	p.Send(cmd)
	p.Expect("ok")
}

// CloseStdin closes the process's stdin, which tells a holding helper to
// let go and exit.
func (p *Proc) CloseStdin() { _ = p.stdin.Close() }

// Wait waits for the process to exit and returns what exec.Cmd.Wait
// returned. It kills the process and fails the test after Guard.
func (p *Proc) Wait() error {
	p.t.Helper()
	_, err := hangtest.Within(p.t, Guard, fmt.Sprintf("%v", p.Cmd.Args), func() (struct{}, error) {
		<-p.done
		return struct{}{}, p.err
	}, func() { _ = p.Cmd.Process.Kill() })
	return err
}

// WaitOK waits for the process to exit and fails the test unless it
// exited 0.
func (p *Proc) WaitOK() {
	p.t.Helper()
	if err := p.Wait(); err != nil {
		p.t.Fatalf("%v: %v", p.Cmd.Args, err)
	}
}

// Kill SIGKILLs the process and reaps it.
func (p *Proc) Kill() {
	p.t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.Cmd.Process.Kill(); err != nil {
		select {
		case <-p.done: // it exited on its own meanwhile
			return
		default:
			p.t.Fatalf("kill %v: %v", p.Cmd.Args, err)
		}
	}
	_ = p.Wait()
}

// Exited reports whether the process has been reaped.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop kills and reaps the process at the end of the test; safe to call
// after Kill or Wait.
func (p *Proc) stop() {
	close(p.quit)
	p.CloseStdin()
	if !p.Exited() {
		_ = p.Cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(Guard):
			p.t.Errorf("%v not reaped within %v of SIGKILL", p.Cmd.Args, Guard)
		}
	}
}

// FullEnv is the environment variable that, set to 1, makes the tests
// that shrink their work for `go test ./...` run at full size (make
// stress sets it).
const FullEnv = "GO_MICROVM_TEST_FULL"

// Full reports whether FullEnv is 1.
func Full() bool { return os.Getenv(FullEnv) == "1" }

// Size returns small, or full when FullEnv is 1. A test sizes with it the
// work that only makes a rare outcome likelier (more rounds, deeper
// trees), never what its proof needs: small must already prove it.
func Size(small, full int) int {
	if Full() {
		return full
	}
	return small
}

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]string{}
)

// Build builds the package pkg (an import path of this module) into an
// executable named base, and returns its path. Call it from TestMain or
// before a test's deadline starts: building takes seconds on a loaded
// machine.
//
// The executable is kept in the user's cache directory under a key of
// the module's sources, the go version and the build environment (see
// cachedBuild), so the test binaries of one `go test ./...`, which run at
// once, and later runs over unchanged sources link it once between them
// rather than once each. Without a cache directory it is built once per
// test process into a temporary directory, which Main removes.
func Build(pkg, base string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	key := pkg + "\x00" + base
	if p, ok := built[key]; ok {
		return p, nil
	}
	if p, err := cachedBuild(pkg, base); err == nil {
		built[key] = p
		return p, nil
	} else if !errors.Is(err, errNoCache) {
		return "", err
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "go-microvm-testbin-")
		if err != nil {
			return "", fmt.Errorf("make binary directory: %w", err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, fmt.Sprint(len(built)), base)
	if err := goBuild(pkg, out); err != nil {
		return "", err
	}
	built[key] = out
	return out, nil
}

// goBuild runs go build -o out pkg without cgo.
func goBuild(pkg, out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("find the go command to build %s: %w", pkg, err)
	}
	// Bounded so a wedged toolchain fails the run instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, pkg)
	cmd.Env = append(slices.Clone(os.Environ()), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// RunnerPackage is the stand-in runner, the one stand-in every test
// starts: it carries the released runner's name and contract (see
// package standin).
const RunnerPackage = "github.com/stacklok/go-microvm/internal/cmd/go-microvm-runner"

// RunnerName is the stand-in runner's executable name, the released
// runner's.
const RunnerName = "go-microvm-runner"

// BuildRunner builds the stand-in runner once and returns its path.
func BuildRunner() (string, error) { return Build(RunnerPackage, RunnerName) }

// MustBuildRunner is BuildRunner for TestMain: it exits the test binary
// with a message when the build fails.
func MustBuildRunner() string {
	p, err := BuildRunner()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		removeBuilt()
		os.Exit(2)
	}
	return p
}

func removeBuilt() {
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
		buildDir = ""
		clear(built)
	}
}

// CopyTestBinary copies the running test binary into dir as base,
// executable by everyone, and returns its path: a helper run as another
// user (under setpriv) cannot execute the original in the go tool's build
// directory, which is private to its owner. See CopyExecutable.
func CopyTestBinary(t testing.TB, dir, base string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	dst := filepath.Join(dir, base)
	CopyExecutable(t, exe, dst)
	return dst
}

// CopyExecutable copies src to the new file dst, executable by everyone.
// Executing dst afterwards never fails with ETXTBSY ("text file busy"):
// no child of this process ever holds dst open for writing.
func CopyExecutable(t testing.TB, src, dst string) {
	t.Helper()
	// A child forked while dst is open for writing holds that descriptor
	// until it execs, even with O_CLOEXEC, and the kernel refuses to
	// execute a file anyone holds open for writing. Forks (os/exec) take
	// ForkLock for writing, so holding it for reading keeps every fork out
	// of the time dst is open.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	if err := copyFile(src, dst); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// copyFile copies src to the new file dst, mode 0755, and closes dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close() // opened read-only
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close() // the copy's error is the one to report
		return err
	}
	return out.Close()
}

// VersionedRunner installs the stand-in runner in dir as a package
// manager may: the file dir/opt/go-microvm-runner-0.0.31, started through
// the symlink dir/bin/go-microvm-runner -> ../opt/go-microvm-runner-0.0.31,
// whose path it returns. A process started through the link runs (per
// /proc/PID/exe) the versioned file, and is named (comm, argv[0]) as the
// link.
func VersionedRunner(t testing.TB, dir string) string {
	t.Helper()
	runner, err := BuildRunner()
	if err != nil {
		t.Fatal(err)
	}
	versioned := RunnerName + "-0.0.31"
	for _, sub := range []string{"opt", "bin"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	CopyExecutable(t, runner, filepath.Join(dir, "opt", versioned))
	link := filepath.Join(dir, "bin", RunnerName)
	if err := os.Symlink(filepath.Join("..", "opt", versioned), link); err != nil {
		t.Fatal(err)
	}
	return link
}

// PublicTempDir is a t.TempDir that other users can traverse (its parent
// too), for what a helper run as another user must reach.
func PublicTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatalf("open up %s: %v", d, err)
		}
	}
	return dir
}

// Nobody returns a command that runs name with args as user and group
// 65534 with no supplementary groups (setpriv), for tests of what a
// process without privileges meets: root ignores file permissions. It
// skips the test when it cannot drop privileges: not root, or no setpriv.
// What the command runs or reads must be reachable by that user
// (PublicTempDir, CopyTestBinary).
func Nobody(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop privileges to another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed: cannot run as another user")
	}
	return exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--", name}, args...)...)
}
