// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/internal/standin"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// Environment of the collect-report helper: which /proc it mounts over its
// own (in a private mount namespace the test gave it) before it collects.
const (
	envProc      = "GC_TEST_PROC"
	procEmpty    = "empty"   // an empty tmpfs: no /proc/self, no /proc/PID
	procHidePID  = "hidepid" // a proc with hidepid=2, then uid 65534 via setpriv
	nobodyID     = "65534"
	reportPrefix = "candidate "
)

// collectReport is the collect-report helper: it collects root, after
// preparing the /proc that envProc names, and prints one line per
// candidate, "candidate BASENAME CLASS REASON", then "done".
func collectReport(root string) int {
	switch os.Getenv(envProc) {
	case procEmpty:
		if err := unix.Mount("none", "/proc", "tmpfs", 0, ""); err != nil {
			fmt.Fprintln(os.Stderr, "mount tmpfs over /proc:", err)
			return 3
		}
	case procHidePID:
		if err := unix.Mount("proc", "/proc", "proc", 0, "hidepid=2"); err != nil {
			fmt.Fprintln(os.Stderr, "mount proc hidepid=2:", err)
			return 3
		}
		// Root sees every process whatever hidepid says: the collector
		// runs as another user, as a service with ProtectProc=invisible.
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, envProc+"=") {
				env = append(env, kv)
			}
		}
		err = syscall.Exec(setpriv, []string{"setpriv", "--reuid=" + nobodyID, "--regid=" + nobodyID, "--clear-groups",
			exe, root}, env)
		fmt.Fprintln(os.Stderr, "exec setpriv:", err)
		return 3
	}
	rep, err := Collect(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "collect:", err)
		return 1
	}
	for _, c := range rep.Kept {
		fmt.Printf("%s%s %s %s\n", reportPrefix, filepath.Base(c.Path), c.Class, c.Reason)
	}
	for _, o := range rep.Reclaimed {
		fmt.Printf("%s%s %s %s\n", reportPrefix, filepath.Base(o.Path), ClassOrphan, o.Reason)
	}
	fmt.Println("done")
	return 0
}

// TestCollectorCannotSeeRunner: a collector whose /proc does not show the
// live runner (an empty /proc, hidepid=2 as another user, its own PID
// namespace) keeps the runner's data directory, both for a record of
// released go-microvm (PID and pid_start_time) and for one of ours (exact
// identity with the PID namespace). Absence from /proc is not death. A
// collector in its own time namespace judges the runner as the host does.
func TestCollectorCannotSeeRunner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create namespaces and mounts")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("needs unshare (util-linux): %v", err)
	}
	bootID, err := procinfo.BootID()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := procinfo.CurrentPIDNamespace()
	if err != nil {
		t.Fatal(err)
	}
	// The collector may run as another user: give it a copy of the test
	// binary it can execute, outside the 0700 build directory.
	bin := t.TempDir()
	exe := testproc.CopyTestBinary(t, bin, "gc.test")
	openUp(t, bin)

	tests := []struct {
		name string
		// args run the helper: unshare's options and what follows.
		args []string
		proc string
		// want is the reason for the released record and for ours.
		released, ours Reason
	}{
		{"empty /proc", []string{"-m"}, procEmpty, ReasonPIDNamespaceUnknown, ReasonPIDNamespaceUnknown},
		{"hidepid=2 as another user", []string{"-m"}, procHidePID, ReasonIdentityUnreadable, ReasonIdentityUnreadable},
		{"own PID namespace", []string{"-p", "-f", "--mount-proc"}, "", ReasonPIDNamespaceUnknown, ReasonOtherPIDNamespace},
		// The host's /proc seen from a child PID namespace shows the
		// runner, but under numbers that are not the collector's.
		{"own PID namespace, the host's /proc", []string{"-p", "-f"}, "", ReasonPIDNamespaceUnknown, ReasonPIDNamespaceUnknown},
		// A time namespace (a CRIU-restored container) shifts the start
		// times /proc shows the collector, not the runner's identity.
		{"own time namespace", []string{"--time", "--boottime", "100000"}, "", ReasonRunnerMatches, ReasonRunnerMatches},
	}
	// reasonClass is the class each reason of the table comes with.
	reasonClass := map[Reason]Class{ReasonPIDNamespaceUnknown: ClassUnknown, ReasonOtherPIDNamespace: ClassUnknown,
		ReasonIdentityUnreadable: ClassLive, ReasonRunnerMatches: ClassLive}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, err := exec.Command(unshare, append(tt.args, "true")...).CombinedOutput(); err != nil {
				t.Skipf("unshare %s refused: %v: %s", strings.Join(tt.args, " "), err, out)
			}
			runner := startRunner(t)
			info := lookup(t, runner.Process.Pid)
			root := t.TempDir()
			openUp(t, root)
			released := &state.State{Version: 1, Active: true, Name: "released", PID: info.PID,
				PIDStartTime: time.Now(), CreatedAt: time.Now()}
			ours := &state.State{Version: 1, Active: true, Name: "ours", PID: info.PID,
				PIDStartTime: time.Now(), CreatedAt: time.Now(),
				Runner: &state.Identity{StartTime: info.StartTime, BootID: bootID, Executable: runnerPath, PIDNamespace: ns.Inode}}
			makeVM(t, filepath.Join(root, "released"), released)
			makeVM(t, filepath.Join(root, "ours"), ours)
			// A collector that is not root must be able to delete what it
			// misjudges, or the test would prove nothing.
			chownTree(t, root, 65534)
			before := snapshot(t, root)

			got := collectFrom(t, exe, root, tt.proc, append([]string{unshare}, tt.args...)...)
			want := map[string]string{
				"released": fmt.Sprintf("%s %s", reasonClass[tt.released], tt.released),
				"ours":     fmt.Sprintf("%s %s", reasonClass[tt.ours], tt.ours),
			}
			for name, w := range want {
				if got[name] != w {
					t.Errorf("%s record: collector says %q, want %q", name, got[name], w)
				}
			}
			after := snapshot(t, root)
			for path, v := range before {
				if strings.Contains(path, rootfsWorkName) && after[path] != v {
					t.Errorf("live runner's %s changed or removed", path)
				}
			}
			if err := unix.Kill(info.PID, 0); err != nil {
				t.Fatalf("the runner died during the test: %v", err)
			}
		})
	}
}

// collectFrom runs the test binary exe as the collect-report helper on
// root through the command wrap (unshare and its options), with the /proc
// that proc names, and returns its report, name → "class reason".
func collectFrom(t *testing.T, exe, root, proc string, wrap ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(wrap[0], append(wrap[1:], exe, root)...)
	cmd.Env = append(os.Environ(), testproc.Env("collect-report"), envProc+"="+proc)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("collector: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	return reportLines(t, out)
}

// reportLines parses collect-report's output into name → "class reason".
func reportLines(t *testing.T, out []byte) map[string]string {
	t.Helper()
	got := map[string]string{}
	done := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "done" {
			done = true
			continue
		}
		if rest, ok := strings.CutPrefix(line, reportPrefix); ok {
			name, verdict, _ := strings.Cut(rest, " ")
			got[name] = verdict
		}
	}
	if !done {
		t.Fatalf("collector did not finish:\n%s", out)
	}
	return got
}

// openUp lets every user reach dir: it and its parents up to the
// temporary directory become searchable.
func openUp(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// chownTree gives root and everything below it to uid (and gid) id.
func chownTree(t *testing.T, root string, id int) {
	t.Helper()
	err := filepath.Walk(root, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, id, id)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startExitedLeaderRunner starts the stand-in runner with its main thread
// exited and another thread running, as a runner whose main thread called
// pthread_exit, and waits until /proc shows its leader a zombie.
func startExitedLeaderRunner(t *testing.T) int {
	t.Helper()
	pid := startRunner(t, standin.EnvExitLeader+"=1").Process.Pid
	waitFor(t, "the runner's leader to show as a zombie", func() bool {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		st, err := procinfo.ParseStat(data)
		return err == nil && st.State == 'Z'
	})
	return pid
}

// TestExitedLeaderRunnerIsLive: a runner whose main thread exited while
// another thread runs shows state Z, and is alive: its data directory is
// kept, for a released record and for one of ours alike.
func TestExitedLeaderRunnerIsLive(t *testing.T) {
	t.Parallel()
	bootID, err := procinfo.BootID()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := procinfo.CurrentPIDNamespace()
	if err != nil {
		t.Fatal(err)
	}
	pid := startExitedLeaderRunner(t)
	info := lookup(t, pid)
	root := t.TempDir()
	released := &state.State{Version: 1, Active: true, Name: "released", PID: pid, PIDStartTime: time.Now(), CreatedAt: time.Now()}
	ours := &state.State{Version: 1, Active: true, Name: "ours", PID: pid, PIDStartTime: time.Now(), CreatedAt: time.Now(),
		Runner: &state.Identity{StartTime: info.StartTime, BootID: bootID, Executable: runnerPath, PIDNamespace: ns.Inode}}
	makeVM(t, filepath.Join(root, "released"), released)
	makeVM(t, filepath.Join(root, "ours"), ours)
	before := map[string]map[string]string{}
	for _, name := range []string{"released", "ours"} {
		before[name] = snapshot(t, filepath.Join(root, name))
	}

	rep := collect(t, root)
	if len(rep.Reclaimed) != 0 {
		t.Errorf("reclaimed %+v", rep.Reclaimed)
	}
	for _, c := range rep.Kept {
		if c.Class != ClassLive || c.Reason != ReasonRunnerMatches {
			t.Errorf("%s: %s (%s: %s), want live (runner-matches)", c.Path, c.Class, c.Reason, c.Detail)
		}
	}
	for name, snap := range before {
		sameSnapshot(t, name, snap, snapshot(t, filepath.Join(root, name)))
	}

	// Once every thread has exited, it is dead.
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the runner to die", func() bool {
		i, err := procinfo.Lookup(pid)
		return err != nil || i.Zombie
	})
	rep = collect(t, root)
	if len(rep.Reclaimed) != 2 {
		t.Errorf("after the runner died: reclaimed %+v, kept %+v; want both", rep.Reclaimed, rep.Kept)
	}
}

// TestRunnerStartedThroughSymlink: a runner exec'd through
// bin/go-microvm-runner -> ../opt/go-microvm-runner-0.0.31 runs the
// versioned file, but was started as the runner. A released record of it
// without a start time is kept (runner-ambiguous: the names disagree),
// not called pid-reused, and reclaimed once the runner is dead.
func TestRunnerStartedThroughSymlink(t *testing.T) {
	t.Parallel()
	link := testproc.VersionedRunner(t, t.TempDir())
	cmd := startRunnerAt(t, link)
	info := lookup(t, cmd.Process.Pid)
	if filepath.Base(info.Executable) != testproc.RunnerName+"-0.0.31" || info.Argv0 != link {
		t.Fatalf("the runner runs %q as %q, want the versioned file as %q", info.Executable, info.Argv0, link)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "released")
	makeVM(t, dir, &state.State{Version: 1, Active: true, Name: "released", PID: info.PID, CreatedAt: time.Now()})
	before := snapshot(t, dir)

	rep := collect(t, root)
	if len(rep.Reclaimed) != 0 || len(rep.Kept) != 1 {
		t.Fatalf("reclaimed %+v, kept %+v; want the runner's directory kept", rep.Reclaimed, rep.Kept)
	}
	if c := rep.Kept[0]; c.Class != ClassLive || c.Reason != ReasonRunnerAmbiguous {
		t.Errorf("kept as %s (%s: %s), want live (runner-ambiguous)", c.Class, c.Reason, c.Detail)
	}
	sameSnapshot(t, "the runner's directory", before, snapshot(t, dir))

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	rep = collect(t, root)
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Reason != ReasonRunnerDead {
		t.Errorf("after the runner died: reclaimed %+v, kept %+v; want it reclaimed (runner-dead)", rep.Reclaimed, rep.Kept)
	}
}

// TestRunnerInContainer: an embedder in a container (a PID namespace of
// its own) records its runner's PID as the container numbers it, in a
// released record (no namespace). From the host's namespace that PID is
// dead, or another process's; the runner holding it in the container
// keeps the directory (runner-other-namespace), while a host orphan
// beside it is reclaimed. Once the container is gone, both are reclaimed.
func TestRunnerInContainer(t *testing.T) {
	t.Parallel()
	free, self := testproc.FreePID(t), os.Getpid()
	stopDead := testproc.RunnerInPIDNamespace(t, free, "")
	stopReused := testproc.RunnerInPIDNamespace(t, self, "")
	root := t.TempDir()
	now := time.Now()
	records := map[string]*state.State{
		// Dead here, at least when recorded.
		"dead-here": {Version: 1, Active: true, Name: "dead-here", PID: free, PIDStartTime: now, CreatedAt: now},
		// This test process here: pid-reused by name.
		"reused-here": {Version: 1, Active: true, Name: "reused-here", PID: self, CreatedAt: now},
		"host-orphan": {Version: 1, Active: true, Name: "host-orphan", PID: deadPID(t), PIDStartTime: now, CreatedAt: now},
	}
	before := map[string]map[string]string{}
	for name, s := range records {
		makeVM(t, filepath.Join(root, name), s)
		before[name] = snapshot(t, filepath.Join(root, name))
	}

	rep := collect(t, root)
	if len(rep.Reclaimed) != 1 || filepath.Base(rep.Reclaimed[0].Path) != "host-orphan" {
		t.Errorf("reclaimed %+v; want host-orphan alone", rep.Reclaimed)
	}
	for _, c := range rep.Kept {
		if c.Class != ClassLive || c.Reason != ReasonRunnerOtherNamespace {
			t.Errorf("%s: %s (%s: %s), want live (runner-other-namespace)", c.Path, c.Class, c.Reason, c.Detail)
		}
	}
	for _, name := range []string{"dead-here", "reused-here"} {
		sameSnapshot(t, name, before[name], snapshot(t, filepath.Join(root, name)))
		if v := judge.State(records[name]); v.Class != ClassLive {
			t.Errorf("judge.State(%s) = %s (%s: %s), want live", name, v.Class, v.Reason, v.Detail)
		}
	}

	stopDead()
	stopReused()
	rep = collect(t, root)
	if len(rep.Reclaimed) != 2 || len(rep.Kept) != 0 {
		t.Errorf("after the container is gone: reclaimed %+v, kept %+v; want both reclaimed", rep.Reclaimed, rep.Kept)
	}
}

// deadPID returns the PID of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// TestRunnerInContainerHiddenProcesses: a host collector that cannot see
// every process (/proc mounted hidepid=2, the collector another user)
// cannot rule out a container's runner at a released record's PID that is
// dead in its namespace: kept as unknown (pid-namespace-unknown), though
// the tree is the collector's to delete.
func TestRunnerInContainerHiddenProcesses(t *testing.T) {
	t.Parallel()
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("needs unshare (util-linux): %v", err)
	}
	free := testproc.FreePID(t)
	testproc.RunnerInPIDNamespace(t, free, "")
	bin := t.TempDir()
	exe := testproc.CopyTestBinary(t, bin, "gc.test")
	openUp(t, bin)
	root := t.TempDir()
	openUp(t, root)
	now := time.Now()
	makeVM(t, filepath.Join(root, "released"), &state.State{Version: 1, Active: true, Name: "released", PID: free, PIDStartTime: now, CreatedAt: now})
	chownTree(t, root, 65534)

	got := collectFrom(t, exe, root, procHidePID, unshare, "-m")
	if want := "unknown pid-namespace-unknown"; got["released"] != want {
		t.Errorf("collector says %q, want %q", got["released"], want)
	}
	mustExist(t, filepath.Join(root, "released", rootfsWorkName))
}

// TestRunnerInContainerOtherName: an embedder in a container started its
// runner from a binary of another name (released RunnerPath allows any)
// and recorded its PID as the container numbers it. From the host that
// PID is dead; the process holding it in the container, started before
// the record, may be the runner, as it would be judged on the host: the
// directory is kept.
func TestRunnerInContainerOtherName(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a PID namespace")
	}
	runner, err := testproc.BuildRunner()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(runner)
	if err != nil {
		t.Fatal(err)
	}
	vmm := filepath.Join(t.TempDir(), "vmm")
	if err := os.WriteFile(vmm, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	free := testproc.FreePID(t)
	testproc.RunnerAsInPIDNamespace(t, vmm, free, "")
	root := t.TempDir()
	now := time.Now()
	dir := filepath.Join(root, "vm")
	makeVM(t, dir, &state.State{Version: 1, Active: true, Name: "vm", PID: free, PIDStartTime: now, CreatedAt: now})
	before := snapshot(t, dir)
	rep := collect(t, root)
	if len(rep.Reclaimed) != 0 {
		t.Errorf("reclaimed %+v, want the live container VM kept", rep.Reclaimed)
	}
	sameSnapshot(t, dir, before, snapshot(t, dir))
}
