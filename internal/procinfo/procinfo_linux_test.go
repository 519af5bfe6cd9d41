// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stacklok/go-microvm/internal/testproc"
)

func TestDeletedExecutable(t *testing.T) {
	t.Parallel()
	exe := testproc.CopyTestBinary(t, t.TempDir(), "upgraded-away")
	cmd := startSleeper(t, exe)
	pid := cmd.Process.Pid

	before := mustLookup(t, pid)
	if before.Executable != exe || before.ExecutableDeleted {
		t.Fatalf("before removal: executable %q, deleted %v; want %q, false", before.Executable, before.ExecutableDeleted, exe)
	}
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	after := mustLookup(t, pid)
	if after.Executable != exe || !after.ExecutableDeleted || after.ExecutableErr != nil {
		t.Errorf("after removal: executable %q, deleted %v, err %v; want %q, true, nil", after.Executable, after.ExecutableDeleted, after.ExecutableErr, exe)
	}
	if after.StartTime != before.StartTime {
		t.Errorf("start time changed from %d to %d", before.StartTime, after.StartTime)
	}
}

func TestExecutableErrOtherUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run processes as other users with setpriv")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skipf("needs setpriv (util-linux) to run processes as other users: %v", err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("needs sleep: %v", err)
	}

	// The observer runs as uid 65533, which cannot enter the 0700 build
	// directory of the test binary: give it a copy it can execute.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	observer := testproc.CopyTestBinary(t, dir, "observer")

	target := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sleep, "60")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = target.Process.Kill()
		_ = target.Wait()
	})
	pid := target.Process.Pid
	// setpriv execs sleep in the same process; wait until it has.
	asRoot, _ := waitFor(t, pid, "running sleep", func(i Info, err error) bool { return err == nil && i.Comm == "sleep" })

	got := runLookupHelper(t, pid, setpriv, "--reuid=65533", "--regid=65533", "--clear-groups", observer)
	if got.Err != "" {
		t.Fatalf("Lookup(%d) as uid 65533: %s", pid, got.Err)
	}
	if got.Info.Executable != "" || got.ExecutableErr == "" || !got.ExecutableErrIsPerm {
		t.Errorf("as uid 65533: executable %q, error %q (permission: %v); want \"\" and a permission error",
			got.Info.Executable, got.ExecutableErr, got.ExecutableErrIsPerm)
	}
	if got.Info.StartTime != asRoot.StartTime || got.Info.Comm != "sleep" || got.Info.Zombie {
		t.Errorf("as uid 65533: %+v; want start time %d, comm sleep, not a zombie", got.Info, asRoot.StartTime)
	}
}

func TestKernelThread(t *testing.T) {
	t.Parallel()
	// PID 2 is kthreadd, the parent of all kernel threads, unless this
	// runs in a PID namespace that does not show it.
	comm, err := os.ReadFile("/proc/2/comm")
	if err != nil || string(comm) != "kthreadd\n" {
		t.Skipf("no kthreadd at PID 2 here (PID namespace?): %q, %v", comm, err)
	}
	info := mustLookup(t, 2)
	// A kernel thread has no executable; only root may look, and others
	// are refused before the kernel says so.
	want, wantName := fs.ErrNotExist, "ENOENT"
	if os.Geteuid() != 0 {
		want, wantName = fs.ErrPermission, "EACCES"
	}
	if info.Executable != "" || !errors.Is(info.ExecutableErr, want) {
		t.Errorf("kthreadd executable %q, %v; want \"\" and %s", info.Executable, info.ExecutableErr, wantName)
	}
	if info.Comm != "kthreadd" || info.Zombie {
		t.Errorf("kthreadd = %+v", info)
	}
}

func TestParseBootTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, data string
		want       int64
		ok         bool
	}{
		{"real", "cpu  1 2 3\nintr 5 6\nctxt 9\nbtime 1732872000\nprocesses 42\n", 1732872000, true},
		{"no trailing newline", "cpu 1\nbtime 1732872000", 1732872000, true},
		{"missing", "cpu 1\nctxt 9\n", 0, false},
		{"empty", "", 0, false},
		{"not a number", "btime soon\n", 0, false},
		{"negative", "btime -5\n", 0, false},
		{"zero", "btime 0\n", 0, false},
		{"overflow", "btime 99999999999999999999999\n", 0, false},
		{"prefix only", "btimex 5\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBootTime([]byte(tt.data))
			if tt.ok != (err == nil) || (tt.ok && got.Unix() != tt.want) {
				t.Errorf("parseBootTime = %v, %v; want %d, ok %v", got.Unix(), err, tt.want, tt.ok)
			}
		})
	}
}

func TestSelfMatchesProcSelfStat(t *testing.T) {
	t.Parallel()
	self, err := Lookup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseStat(data)
	if err != nil {
		t.Fatal(err)
	}
	if st.StartTime != self.StartTime || st.PID != self.PID || st.Comm != self.Comm {
		t.Errorf("/proc/self/stat says %+v; Self says %+v", st, self)
	}
	if self.Argv0 != os.Args[0] {
		t.Errorf("Self's argv[0] is %q, want %q", self.Argv0, os.Args[0])
	}
}

// TestFindNested finds a process by the PID a nested PID namespace gives
// it, and no longer once the namespace is gone.
func TestFindNested(t *testing.T) {
	t.Parallel()
	pid := testproc.FreePID(t)
	stop := testproc.RunnerInPIDNamespace(t, pid, "")
	found := func() []Nested {
		procs, err := FindNested(pid)
		if err != nil {
			t.Fatal(err)
		}
		return slices.DeleteFunc(procs, func(p Nested) bool { return p.Info.Comm != "go-microvm-runn" })
	}
	procs := found()
	if len(procs) != 1 || procs[0].PID == pid || procs[0].Info.Zombie {
		t.Fatalf("FindNested(%d) = %+v, want the runner, under another PID here", pid, procs)
	}
	if self, err := FindNested(os.Getpid()); err != nil || slices.ContainsFunc(self, func(p Nested) bool { return p.PID == os.Getpid() }) {
		t.Errorf("FindNested(own pid) = %+v, %v; this process is in no nested namespace", self, err)
	}
	stop()
	if procs := found(); len(procs) != 0 {
		t.Errorf("FindNested(%d) after the namespace was killed = %+v", pid, procs)
	}
	if procs, err := FindNested(1 << 22); procs != nil || err != nil {
		t.Errorf("FindNested(1<<22) = %+v, %v; no namespace can hold it", procs, err)
	}
}
