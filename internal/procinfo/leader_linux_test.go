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
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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
