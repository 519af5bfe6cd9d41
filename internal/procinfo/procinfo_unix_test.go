// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux || darwin

package procinfo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/testproc"
)

// The helpers the re-executed test binary runs instead of the tests:
// "sleep" (a process to look up), "lookup" (print Lookup($PROCINFO_PID)
// as JSON, as seen from this other process) and "boottime" (print
// BootTime, as seen from this process's time namespace).

// slack absorbs the rounding of the boot time to whole seconds and the
// 10 ms ticks; it is a fact check, not a speed assertion.
const slack = 2 * time.Second

// guard bounds every wait for the kernel to reach a state.
const guard = 10 * time.Second

var processInit = time.Now()

func TestMain(m *testing.M) {
	testproc.Register("sleep", func([]string) int {
		time.Sleep(60 * time.Second)
		return 0
	})
	testproc.Register("lookup", func([]string) int { return helperLookup() })
	testproc.Register("boottime", func([]string) int {
		bt, err := BootTime()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(bt.Unix())
		return 0
	})
	testproc.Main(m)
}

// lookupReport is Info as the "lookup" helper prints it: errors as text.
type lookupReport struct {
	Err                 string
	Info                Info
	ExecutableErr       string
	ExecutableErrIsPerm bool
}

func helperLookup() int {
	pid, err := strconv.Atoi(os.Getenv("PROCINFO_PID"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad PROCINFO_PID:", err)
		return 2
	}
	var r lookupReport
	r.Info, err = Lookup(pid)
	if err != nil {
		r.Err = err.Error()
	}
	if r.Info.ExecutableErr != nil {
		r.ExecutableErr = r.Info.ExecutableErr.Error()
		r.ExecutableErrIsPerm = errors.Is(r.Info.ExecutableErr, fs.ErrPermission)
		r.Info.ExecutableErr = nil
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runLookupHelper runs "lookup" for pid in a separate process made by
// exec.Command(name, args...) and returns its report.
func runLookupHelper(t *testing.T, pid int, name string, args ...string) lookupReport {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), testproc.Env("lookup"), "PROCINFO_PID="+strconv.Itoa(pid))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("lookup helper: %v", err)
	}
	var r lookupReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("lookup helper output %q: %v", out, err)
	}
	return r
}

func testExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// startSleeper starts exe as a "sleep" helper and kills and reaps it when
// the test ends (harmless if the test already did).
func startSleeper(t *testing.T, exe string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), testproc.Env("sleep"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func mustLookup(t *testing.T, pid int) Info {
	t.Helper()
	info, err := Lookup(pid)
	if err != nil {
		t.Fatalf("Lookup(%d): %v", pid, err)
	}
	return info
}

// realPath resolves symlinks (macOS /var is one) so paths compare equal.
func realPath(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// commOf is what the kernel keeps as the short name of an executable.
func commOf(exe string) string {
	base := filepath.Base(exe)
	if len(base) > 15 {
		base = base[:15]
	}
	return base
}

func TestSelf(t *testing.T) {
	t.Parallel()
	self, err := Lookup(os.Getpid())
	if err != nil {
		t.Fatalf("Self: %v", err)
	}
	boot, err := BootTime()
	if err != nil {
		t.Fatalf("BootTime: %v", err)
	}
	exe := testExecutable(t)
	if self.PID != os.Getpid() || self.StartTime == 0 || self.Zombie {
		t.Errorf("Self = %+v, want pid %d, a start time, not a zombie", self, os.Getpid())
	}
	if self.Executable == "" || !filepath.IsAbs(self.Executable) || self.ExecutableErr != nil {
		t.Errorf("Self executable = %q, %v; want an absolute path", self.Executable, self.ExecutableErr)
	} else if got, want := realPath(t, self.Executable), realPath(t, exe); got != want {
		t.Errorf("Self executable = %q, want %q", got, want)
	}
	if self.Comm != commOf(exe) {
		t.Errorf("Self comm = %q, want %q", self.Comm, commOf(exe))
	}
	if self.Started.Before(boot) || self.Started.After(processInit.Add(slack)) {
		t.Errorf("Self started %v, want between boot %v and package init %v", self.Started, boot, processInit)
	}

	// Another process sees the same identity.
	other := runLookupHelper(t, os.Getpid(), exe)
	if other.Err != "" {
		t.Fatalf("helper Lookup(%d): %s", os.Getpid(), other.Err)
	}
	if other.Info.StartTime != self.StartTime || other.Info.Executable != self.Executable || other.Info.Comm != self.Comm {
		t.Errorf("helper sees %+v, we see %+v", other.Info, self)
	}
}

func TestBootIDAndTime(t *testing.T) {
	t.Parallel()
	id, err := BootID()
	if err != nil || id == "" {
		t.Fatalf("BootID = %q, %v; want a non-empty id", id, err)
	}
	if again, err := BootID(); again != id || err != nil {
		t.Errorf("BootID again = %q, %v; want %q", again, err, id)
	}
	boot, err := BootTime()
	if err != nil {
		t.Fatalf("BootTime: %v", err)
	}
	if !boot.Before(time.Now()) || boot.Year() < 2000 {
		t.Errorf("BootTime = %v, want a time in the past", boot)
	}
}

func TestLookupChild(t *testing.T) {
	t.Parallel()
	exe := testExecutable(t)
	before := time.Now()
	a := startSleeper(t, exe)
	after := time.Now()
	b := startSleeper(t, exe)

	ia := mustLookup(t, a.Process.Pid)
	if ia.PID != a.Process.Pid || ia.Zombie || ia.StartTime == 0 {
		t.Errorf("Lookup(child) = %+v, want pid %d, a start time, not a zombie", ia, a.Process.Pid)
	}
	if ia.Started.Before(before.Add(-slack)) || ia.Started.After(after.Add(slack)) {
		t.Errorf("child started %v, want between %v and %v", ia.Started, before, after)
	}
	if ia.ExecutableErr != nil || realPath(t, ia.Executable) != realPath(t, exe) {
		t.Errorf("child executable = %q, %v; want %q", ia.Executable, ia.ExecutableErr, exe)
	}
	if ia.Comm != commOf(exe) {
		t.Errorf("child comm = %q, want %q", ia.Comm, commOf(exe))
	}
	if again := mustLookup(t, a.Process.Pid); again != ia {
		t.Errorf("second Lookup = %+v, first %+v", again, ia)
	}
	ib := mustLookup(t, b.Process.Pid)
	if ib.PID == ia.PID && ib.StartTime == ia.StartTime {
		t.Errorf("two children share identity (%d, %d)", ia.PID, ia.StartTime)
	}
}

// waitFor polls Lookup(pid) until done says so, failing after guard.
func waitFor(t *testing.T, pid int, what string, done func(Info, error) bool) (Info, error) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		info, err := Lookup(pid)
		if done(info, err) {
			return info, err
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not %s after %v: last Lookup = %+v, %v", pid, what, guard, info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLookupZombieThenReaped(t *testing.T) {
	t.Parallel()
	cmd := startSleeper(t, testExecutable(t))
	pid := cmd.Process.Pid
	live := mustLookup(t, pid)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	zombie, _ := waitFor(t, pid, "a zombie", func(i Info, err error) bool { return err == nil && i.Zombie })
	if zombie.StartTime != live.StartTime {
		t.Errorf("zombie start time %d, live %d", zombie.StartTime, live.StartTime)
	}

	if err := cmd.Wait(); err == nil {
		t.Fatal("Wait after SIGKILL returned nil")
	}
	info, err := Lookup(pid)
	switch {
	case errors.Is(err, ErrNotExist):
	case err == nil && info.StartTime != live.StartTime:
		t.Logf("pid %d already reused by another process (start %d)", pid, info.StartTime)
	default:
		t.Errorf("Lookup(reaped %d) = %+v, %v; want ErrNotExist", pid, info, err)
	}
}

func TestLookupNotExist(t *testing.T) {
	t.Parallel()
	// The largest int truncates to pid_t -1 on 64-bit platforms: kill(-1)
	// would reach every process.
	for _, pid := range []int{0, -1, 1 << 30, int(^uint(0) >> 1), -int(^uint(0)>>1) - 1} {
		info, err := Lookup(pid)
		if !errors.Is(err, ErrNotExist) {
			t.Errorf("Lookup(%d) = %+v, %v; want ErrNotExist", pid, info, err)
		}
	}
}

func TestLookupConcurrent(t *testing.T) {
	t.Parallel()
	self, err := Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if got, err := Lookup(os.Getpid()); err != nil || got != self {
				t.Errorf("concurrent Self = %+v, %v; want %+v", got, err, self)
			}
		})
	}
	wg.Wait()
}
