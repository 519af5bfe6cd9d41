// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"bufio"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/runner"
	"github.com/stacklok/go-microvm/state"
)

// releasedVM is a stand-in runner started the way released go-microvm
// starts its runner: no claim, no lease, no run marker; the state records
// only pid and pid_start_time, written just after the spawn. Collectors
// judge it by the PID rules alone.
type releasedVM struct {
	dir string
	cmd *exec.Cmd
	sum map[string]string
}

// startReleasedVM clones a rootfs of nfiles files into dir, starts the
// stand-in runner on it (watching its files like the others) and records
// it as released go-microvm does.
func startReleasedVM(t *testing.T, dir string, r *rand.Rand, nfiles int) *releasedVM {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs-work")
	buildTree(t, rootfs, r, nfiles, 4)
	cfg, err := json.Marshal(runner.Config{
		RootPath:   rootfs,
		NumVCPUs:   1,
		RAMMiB:     64,
		ConsoleLog: filepath.Join(dir, "console.log"),
		VMLogPath:  filepath.Join(dir, "vm.log"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(standinPath(t), string(cfg))
	cmd.Env = append(os.Environ(), "STANDIN_READY="+ready)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start released runner: %v", err)
	}
	v := &releasedVM{dir: dir, cmd: cmd}
	t.Cleanup(func() { v.stop(t) })
	writeStateFile(t, dir, func(s *state.State) {
		s.Active = true
		s.PID = cmd.Process.Pid
		s.PIDStartTime = time.Now()
	})
	if pid := waitPIDFile(t, ready, 20*time.Second); pid != cmd.Process.Pid {
		t.Fatalf("released stand-in reported pid %d, started %d", pid, cmd.Process.Pid)
	}
	v.sum = treeSum(t, rootfs)
	return v
}

// alive reports whether the released runner still runs.
func (v *releasedVM) alive() bool {
	return v.cmd.ProcessState == nil && syscall.Kill(v.cmd.Process.Pid, 0) == nil
}

// stop ends the runner with SIGTERM and records a clean stop as released
// go-microvm does (active false, no pid); a second call does nothing.
func (v *releasedVM) stop(t *testing.T) {
	t.Helper()
	if v.cmd.ProcessState != nil {
		return
	}
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitGuard(v.cmd, 20*time.Second); err != nil {
		t.Errorf("released runner of %s: %v", v.dir, err)
	}
	if _, err := os.Lstat(filepath.Join(v.dir, state.FileName)); err == nil {
		writeStateFile(t, v.dir, func(s *state.State) {
			s.Active = false
			s.PID = 0
		})
	}
}

// containerVM is a stand-in runner in a PID namespace of its own,
// recorded as released go-microvm in a container records it: its PID as
// the namespace numbers it, dead (or another process's) in the
// collectors' namespace, and no namespace in the record.
type containerVM struct {
	dir  string
	pid  int
	sum  map[string]string
	stop func()
}

// startContainerVM clones a rootfs of nfiles files into dir, starts the
// stand-in runner on it in a new PID namespace and records it as released
// go-microvm does. It returns nil, and the test goes on without it, when
// the test is not root.
func startContainerVM(t *testing.T, dir string, r *rand.Rand, nfiles int) *containerVM {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("no runner in a container: needs root to make a PID namespace")
		return nil
	}
	rootfs := filepath.Join(dir, "rootfs-work")
	buildTree(t, rootfs, r, nfiles, 4)
	v := &containerVM{dir: dir, pid: testproc.FreePID(t)}
	v.stop = testproc.RunnerInPIDNamespace(t, v.pid, rootfs)
	writeStateFile(t, dir, func(s *state.State) {
		s.Active = true
		s.PID = v.pid
		s.PIDStartTime = time.Now()
	})
	v.sum = treeSum(t, rootfs)
	return v
}

// finish checks that the runner still runs in its container and that its
// rootfs is intact, then ends the container and records a clean stop.
func (v *containerVM) finish(t *testing.T) {
	t.Helper()
	procs, err := procinfo.FindNested(v.pid)
	if err != nil || len(procs) == 0 {
		t.Errorf("runner in a container (pid %d there) died during the test: %v, %v", v.pid, procs, err)
	}
	checkSame(t, "container runner's rootfs", filepath.Join(v.dir, "rootfs-work"), v.sum)
	v.stop()
	writeStateFile(t, v.dir, func(s *state.State) {
		s.Active = false
		s.PID = 0
	})
}

// nestedVM is a live VM's data directory nested inside an orphan's
// rootfs-work, its lease held by a helper process. Collectors must leave
// it where it is, intact, for as long as its lease is held.
type nestedVM struct {
	path   string // where it was made
	rel    string // its path relative to the orphan's rootfs-work
	root   string
	sum    map[string]string
	holder *exec.Cmd
}

// startNestedVM makes a live data directory at orphan/rootfs-work/rel,
// with a small rootfs and a state with the run marker set, and has a
// helper process hold its lease.
func startNestedVM(t *testing.T, root, orphan, rel string, r *rand.Rand) *nestedVM {
	t.Helper()
	dir := filepath.Join(orphan, "rootfs-work", rel)
	buildTree(t, filepath.Join(dir, "rootfs-work"), r, 30, 3)
	markOrphan(t, dir)
	n := &nestedVM{path: dir, rel: rel, root: root, sum: treeSum(t, dir)}
	n.holder = helperCmd("hold-lease", envTarget+"="+dir)
	out, err := n.holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n.holder.Stderr = os.Stderr
	if err := n.holder.Start(); err != nil {
		t.Fatalf("start lease holder: %v", err)
	}
	t.Cleanup(n.release)
	sc := bufio.NewScanner(out)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("lease holder of %s did not get ready", dir)
	}
	return n
}

// locations lists where the nested directory is now: where it was made,
// or in an entry of root's trash.
func (n *nestedVM) locations() []string {
	var at []string
	if _, err := os.Lstat(n.path); err == nil {
		at = append(at, n.path)
	}
	moved, _ := filepath.Glob(filepath.Join(n.root, ".go-microvm-gc-trash", "*", n.rel))
	return append(at, moved...)
}

// check fails the test unless the nested directory is where it was made,
// and only there, unchanged. It returns how many of its files are lost or
// changed.
func (n *nestedVM) check(t *testing.T, when string) int {
	t.Helper()
	at := n.locations()
	if len(at) != 1 || at[0] != n.path {
		t.Errorf("nested live directory (%s) found at %q, want only %s", when, at, n.path)
		return len(n.sum)
	}
	lost, lines := diffSums(n.sum, treeSum(t, at[0]), 10)
	for _, l := range lines {
		t.Errorf("nested live directory (%s) at %s: %s", when, at[0], l)
	}
	return lost
}

// release ends the lease holder, so the nested directory is an orphan.
func (n *nestedVM) release() {
	if n.holder.ProcessState != nil {
		return
	}
	_ = n.holder.Process.Kill()
	_ = n.holder.Wait()
}
