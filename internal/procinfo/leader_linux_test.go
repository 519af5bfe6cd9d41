// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/testproc"
)

// exitLeaderEnv makes the re-executed test binary a process whose main
// thread (the thread-group leader) exits while its other threads run on,
// as a runner whose main thread called pthread_exit. It happens in init,
// which runs on the main thread, before any test machinery starts.
const exitLeaderEnv = "PROCINFO_EXIT_LEADER"

func init() {
	if os.Getenv(exitLeaderEnv) != "1" {
		return
	}
	runtime.LockOSThread()
	// The runtime believes the exited thread still runs, so nothing may
	// stop the world after it is gone.
	debug.SetGCPercent(-1)
	go func() {
		for {
			time.Sleep(time.Hour)
		}
	}()
	os.Stdout.WriteString("ready\n")
	for {
		unix.RawSyscall(unix.SYS_EXIT, 0, 0, 0)
	}
}

// startExitedLeader starts a process whose leader has exited while its
// other threads live, and waits until /proc shows the leader a zombie.
func startExitedLeader(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(testExecutable(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), exitLeaderEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("exited-leader helper said %q, %v", line, err)
	}
	pid := cmd.Process.Pid
	deadline := time.Now().Add(guard)
	for {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		st, err := ParseStat(data)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == 'Z' {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("leader of pid %d still in state %c after %s", pid, st.State, guard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestZombieLeaderWithLiveThreads: a process whose leader exited shows
// state Z, but lives while any thread does; it is a zombie only once the
// whole thread group has exited.
func TestZombieLeaderWithLiveThreads(t *testing.T) {
	t.Parallel()
	cmd := startExitedLeader(t)
	pid := cmd.Process.Pid
	info := mustLookup(t, pid)
	if info.Zombie || info.Threads < 2 {
		t.Fatalf("leader exited, threads live: Zombie %v, Threads %d; want false, at least 2", info.Zombie, info.Threads)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	dead, _ := waitFor(t, pid, "a zombie", func(i Info, err error) bool { return err == nil && i.Zombie })
	if dead.StartTime != info.StartTime {
		t.Errorf("zombie start time %d, live %d", dead.StartTime, info.StartTime)
	}
	_ = cmd.Wait()
	if _, err := Lookup(pid); !errors.Is(err, ErrNotExist) {
		t.Logf("pid %d after reaping: %v (reused?)", pid, err)
	}
}

// TestCurrentPIDNamespace: the namespace is the one /proc/self/ns/pid
// names, and the host's namespace is recognised by its fixed inode.
func TestCurrentPIDNamespace(t *testing.T) {
	t.Parallel()
	ns, err := CurrentPIDNamespace()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		t.Fatal(err)
	}
	if ns.Inode != st.Ino || ns.Initial != (st.Ino == InitialPIDNamespace) {
		t.Errorf("CurrentPIDNamespace = %+v; /proc/self/ns/pid has inode %d", ns, st.Ino)
	}
}

// TestLookupInTimeNamespace: a lookup made from a time namespace whose
// boottime offset is not the host's (a container restored by CRIU, say)
// gives the same kernel start time as one from the host. The kernel adds
// the reader's offset to /proc/PID/stat's start time, so without taking
// it out a collector there would call a live runner's exact identity a
// reused PID, and the runner package a runner it started gone.
func TestLookupInTimeNamespace(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a time namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("needs unshare (util-linux): %v", err)
	}
	if _, err := os.Stat("/proc/self/timens_offsets"); err != nil {
		t.Skipf("kernel without time namespaces: %v", err)
	}
	exe := testExecutable(t)
	sleeper := startSleeper(t, exe)
	want := mustLookup(t, sleeper.Process.Pid)
	if out, err := exec.Command(unshare, "--time", "--boottime", "100000", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot create a time namespace: %v: %s", err, out)
	}
	got := runLookupHelper(t, sleeper.Process.Pid, unshare, "--time", "--boottime", "100000", exe)
	if got.Err != "" {
		t.Fatalf("Lookup in a time namespace: %s", got.Err)
	}
	if got.Info.StartTime != want.StartTime {
		t.Errorf("StartTime in a time namespace = %d, on the host %d", got.Info.StartTime, want.StartTime)
	}
	if d := got.Info.Started.Sub(want.Started); d < -time.Second || d > time.Second {
		t.Errorf("Started in a time namespace = %s, on the host %s", got.Info.Started, want.Started)
	}
	// The boot time, against which pid_start_time says "rebooted", is
	// the host's too.
	hostBoot, err := BootTime()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(unshare, "--time", "--boottime", "100000", exe)
	cmd.Env = append(os.Environ(), testproc.Env("boottime"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("boottime helper: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != strconv.FormatInt(hostBoot.Unix(), 10) {
		t.Errorf("BootTime in a time namespace = %s, on the host %d", got, hostBoot.Unix())
	}
}

func TestParseBootOffset(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "monotonic 0 0\nboottime 0 0\n", want: 0},
		{in: "monotonic           0         0\nboottime       100000         0\n", want: 100000 * ClockTicks},
		{in: "boottime -5 500000000\n", want: -450},
		{in: "boottime 1 5\n", bad: true}, // not a whole tick: cannot be taken out exactly
		{in: "monotonic 1 0\n", bad: true},
		{in: "boottime x 0\n", bad: true},
		{in: "boottime 1\n", bad: true},
		{in: "boottime 1 1000000000\n", bad: true},
	}
	for _, tt := range tests {
		got, err := parseBootOffset([]byte(tt.in))
		if tt.bad {
			if err == nil {
				t.Errorf("parseBootOffset(%q) = %d, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseBootOffset(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}
