// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/runner"
	"github.com/stacklok/go-microvm/state"
)

// helperCreator creates one VM at STRESS_TARGET the way released
// microvm.Run does with gc.BeforeCreate(root, gc.WithCreating(dir)) as
// its check: make the directory, the check, the clone (STRESS_FILES
// files), the runner through runner.SpawnProcess, the state save. It
// prints each phase as it completes and then waits to be killed.
func helperCreator() int {
	root, dir := os.Getenv(envRoot), os.Getenv(envTarget)
	nfiles, _ := strconv.Atoi(os.Getenv("STRESS_FILES"))
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Printf("error: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	fmt.Println("mkdir")
	if err := gc.BeforeCreate(root, gc.WithCreating(dir))(ctx); err != nil {
		return fail(err)
	}
	fmt.Println("checked")
	rootfs := filepath.Join(dir, "rootfs-work")
	if _, err := makeTree(rootfs, helperRand(), nfiles, 3); err != nil {
		return fail(err)
	}
	fmt.Println("cloned")
	p, err := runner.SpawnProcess(ctx, runner.Config{
		RootPath:   rootfs,
		NumVCPUs:   1,
		RAMMiB:     64,
		RunnerPath: os.Getenv(envRunner),
		VMLogPath:  filepath.Join(dir, "vm.log"),
		ConsoleLog: filepath.Join(dir, "console.log"),
	})
	if err != nil {
		return fail(err)
	}
	fmt.Println("spawned")
	if err := releasedSave(ctx, dir, p.PID()); err != nil {
		return fail(err)
	}
	fmt.Println("saved")
	select {}
}

// runCreator starts a creator of dir and SIGKILLs it delay after it
// started, or after it printed the phase after when that is not "" (never,
// when delay is negative: it then runs to its end). It returns the last
// phase the creator completed ("" for none) and, when it completed them
// all, when it completed "cloned" and "saved" (else zeros).
func runCreator(t *testing.T, root, dir string, nfiles int, after string, delay time.Duration) (last string, cloned, saved time.Duration) {
	t.Helper()
	cmd := helperCmd("creator", envRoot+"="+root, envTarget+"="+dir, envRunner+"="+standinPath(t),
		fmt.Sprintf("STRESS_FILES=%d", nfiles), "STANDIN_WATCH=", "STANDIN_READY=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var kill <-chan time.Time
	if delay >= 0 && after == "" {
		kill = time.After(delay)
	}
	guard := time.After(2 * time.Minute)
	var clonedAt time.Duration
loop:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break loop
			}
			if len(line) > 6 && line[:6] == "error:" {
				t.Errorf("creator of %s: %s", dir, line)
			}
			last = line
			if delay >= 0 && line == after {
				kill = time.After(delay)
			}
			if line == "cloned" {
				clonedAt = time.Since(start)
			}
			if line == "saved" {
				cloned, saved = clonedAt, time.Since(start)
				if delay < 0 {
					break loop
				}
			}
		case <-kill:
			break loop
		case <-guard:
			t.Errorf("creator of %s hung after %q", dir, last)
			break loop
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	// Lines printed before the kill landed.
	for line := range lines {
		last = line
	}
	return last, cloned, saved
}

// TestKillCreatorAnywhere SIGKILLs, at random instants, an embedder that
// creates a VM the way released microvm.Run does with
// gc.BeforeCreate(root, gc.WithCreating(dir)) as its check, beside a
// live VM. After each kill (and the SIGKILL of any runner it started) one
// collection must leave nothing of it, except, when the kill landed before
// the check's run marker was on disk, the directory released Run makes
// before its checks, holding at most go-microvm's state lock and a
// temporary save (nothing cloned); the live VM's files stay unchanged.
func TestKillCreatorAnywhere(t *testing.T) {
	kills := envInt(t, "STRESS_KILLS", 30)
	nfiles := envInt(t, "STRESS_FILES", 1000) / 4
	r, seed := newRand(t)
	top := t.TempDir()
	root := filepath.Join(top, "root")
	report := filepath.Join(top, "standin-report")
	t.Setenv("STANDIN_WATCH", "5ms")
	t.Setenv("STANDIN_REPORT", report)
	t.Setenv("STRESS_SEED", fmt.Sprint(seed))
	live := startLiveVM(t, filepath.Join(root, "live"), r, 60)

	_, cloned, full := runCreator(t, root, filepath.Join(root, "calibrate"), nfiles, "", -1)
	settle(t, filepath.Join(root, "calibrate"))
	if full == 0 {
		t.Fatal("calibration creator did not finish")
	}
	t.Logf("one creation of %d files: %v", nfiles, full)

	phases := map[string]int{}
	bare, leftBytes := map[string]int{}, int64(0)
	for i := 0; i < kills && !t.Failed(); i++ {
		dir := filepath.Join(root, fmt.Sprintf("vm-%d", i))
		// Half the kills anywhere, half from the end of the clone to the
		// state save: the spawn and the save are short, but they are
		// where the runner and the record appear.
		after, delay := "", time.Duration(r.Int64N(int64(full)+1))
		if r.IntN(2) == 0 {
			after, delay = "cloned", time.Duration(r.Int64N(int64(full-cloned)+1))
		}
		last, c, f := runCreator(t, root, dir, nfiles, after, delay)
		if f > 0 {
			cloned, full = c, f // follow the machine's load
		}
		if last == "" {
			last = "none"
		}
		phases[last]++
		settle(t, dir)
		rep, err := gc.Collect(root)
		if err != nil {
			t.Fatalf("collect after kill %d (%s): %v", i+1, last, err)
		}
		for _, pe := range rep.Errors {
			t.Errorf("collect after kill %d: %v", i+1, pe)
		}
		ents, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			switch name := e.Name(); {
			case name == "live" || name == gc.LockName() || name == gc.TrashName:
			case isBare(filepath.Join(root, name), &leftBytes):
				// A directory without a state file and nothing cloned: the
				// one released Run makes before its checks, by a kill
				// before the check's run marker was on disk (with at most
				// the state lock and a temporary save), or an orphan whose
				// reclaim the killed creator's own collection was
				// interrupted in after its state file went. No collector
				// judges a directory without a state file.
				bare[last]++
				if err := os.RemoveAll(filepath.Join(root, name)); err != nil {
					t.Fatal(err)
				}
			default:
				t.Errorf("kill %d after %s: %s left under the root", i+1, last, name)
			}
		}
		checkSame(t, fmt.Sprintf("live rootfs (kill %d)", i+1), filepath.Join(live.dir, "rootfs-work"), live.sum)
	}
	t.Logf("%d kills; last phase done: %v; bare directories left (by last phase): %v, holding %d bytes",
		kills, phases, bare, leftBytes)
	if kills >= 20 && phases["checked"]+phases["cloned"]+phases["spawned"] == 0 {
		t.Errorf("no kill landed between the check and the state save: %v", phases)
	}
	lines := reportLines(t, report)
	for _, l := range lines {
		t.Errorf("stand-in saw a loss: %s", l)
	}
	t.Logf("files lost (stand-in reports): %d", len(lines))
}

// isBare reports whether dir holds nothing but go-microvm's state lock
// and temporary saves, adding their sizes to *bytes.
func isBare(dir string, bytes *int64) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	var n int64
	for _, e := range ents {
		if e.Name() != state.LockFileName && !strings.HasPrefix(e.Name(), "state-") {
			return false
		}
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	*bytes += n
	return true
}

// settle SIGKILLs the runners a killed creator started for dir, once the
// processes that hold dir open are all runners: a creator killed in the
// middle of starting one leaves its forked child to finish its exec.
func settle(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		pending := 0
		for _, pid := range dirHolders(dir) {
			cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
			if !strings.Contains(string(cmd), `"root_path"`) {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("a process that is not a runner still holds %s open", dir)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	killStandins(t, dir)
}

// dirHolders lists the processes with a descriptor open on dir.
func dirHolders(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", e.Name(), "fd"))
		for _, fd := range fds {
			if l, _ := os.Readlink(filepath.Join("/proc", e.Name(), "fd", fd.Name())); l == dir {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
