// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/runner"
)

const (
	embedders  = 4
	collectors = 3
)

// TestConcurrency runs embedder processes that create, run, crash and
// cleanly stop VMs through package runner, while the test SIGKILLs the
// embedders themselves at random and collector processes run gc.Collect in
// a loop, all on one root, for STRESS_DURATION. Every stand-in runner
// watches its own rootfs every 5 ms. At the end, after stopping everything
// and one final Collect: no stand-in saw a loss, no orphan, no trash.
func TestConcurrency(t *testing.T) {
	dur := envDuration(t, "STRESS_DURATION", 5*time.Second)
	r, seed := newRand(t)
	top := t.TempDir()
	root := filepath.Join(top, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(top, "standin-report")
	// Beside the embedders' VMs: a runner recorded as released go-microvm
	// records it (PID and pid_start_time, no lease), one recorded so from
	// a container (its PID the container's), and a live VM's data
	// directory nested inside an orphan's rootfs-work, its lease held by
	// another process. Their files must survive every collector.
	t.Setenv("STANDIN_WATCH", "5ms")
	t.Setenv("STANDIN_REPORT", report)
	released := startReleasedVM(t, filepath.Join(root, "released"), r, 60)
	// A runner an embedder in a container recorded (released format, its
	// PID as the container numbers it): kept by every collector.
	container := startContainerVM(t, filepath.Join(root, "container"), r, 60)
	nestedOrphan := filepath.Join(root, "orphan-n")
	buildTree(t, filepath.Join(nestedOrphan, "rootfs-work"), r, 60, 3)
	markOrphan(t, nestedOrphan)
	nested := startNestedVM(t, root, nestedOrphan, filepath.Join("srv", "nested-live"), r)

	// The window starts once everything the test needs is built and set
	// up, so a loaded machine does not eat it.
	runnerPath := standinPath(t)
	deadline := time.Now().Add(dur)
	env := []string{
		envRoot + "=" + root,
		envRunner + "=" + runnerPath,
		envDeadline + "=" + strconv.FormatInt(deadline.UnixNano(), 10),
		"STRESS_SEED=" + strconv.FormatUint(seed, 10),
		"STANDIN_WATCH=5ms",
		"STANDIN_REPORT=" + report,
	}
	t.Cleanup(func() { killStandins(t, root) })

	// Collectors.
	type collector struct {
		cmd    *exec.Cmd
		out    bytes.Buffer
		stderr bytes.Buffer
	}
	var cols []*collector
	for i := 0; i < collectors; i++ {
		c := &collector{cmd: helperCmd("collect-loop", append(env, fmt.Sprintf("%s=c%d", envWorker, i))...)}
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.stderr
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("start collector: %v", err)
		}
		t.Cleanup(func() { c.cmd.Process.Kill() })
		cols = append(cols, c)
	}

	// Embedders: each slot restarts its embedder (next generation) when
	// it was SIGKILLed, until the deadline.
	var (
		mu            sync.Mutex
		embedderKills int
		selfKills     int
		stderrs       []string
		wg            sync.WaitGroup
	)
	for i := 0; i < embedders; i++ {
		killSeed := r.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			kr := newSlotRand(killSeed)
			for gen := 0; time.Until(deadline) > 300*time.Millisecond; gen++ {
				name := fmt.Sprintf("w%dg%d", i, gen)
				var stderr bytes.Buffer
				cmd := helperCmd("embedder", append(env, envWorker+"="+name,
					envEvents+"="+filepath.Join(top, "events-"+name))...)
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Errorf("start embedder: %v", err)
					return
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				var err error
				select {
				case err = <-done:
				case <-time.After(time.Duration(1000+kr.IntN(5000)) * time.Millisecond):
					cmd.Process.Signal(syscall.SIGKILL)
					err = <-done
					if isKilled(err) {
						mu.Lock()
						embedderKills++
						mu.Unlock()
						continue
					}
				}
				if isKilled(err) {
					mu.Lock()
					selfKills++
					mu.Unlock()
					continue
				}
				if err != nil {
					mu.Lock()
					stderrs = append(stderrs, fmt.Sprintf("embedder %s: %v\n%s", name, err, stderr.String()))
					mu.Unlock()
				}
				return
			}
		}()
	}
	wg.Wait()
	for _, s := range stderrs {
		t.Error(s)
	}

	var total collectSummary
	for _, c := range cols {
		if err := waitGuard(c.cmd, time.Until(deadline)+2*time.Minute); err != nil {
			t.Errorf("collector: %v\n%s", err, c.stderr.String())
			continue
		}
		var s collectSummary
		if err := json.Unmarshal(bytes.TrimSpace(c.out.Bytes()), &s); err != nil {
			t.Errorf("collector summary %q: %v", c.out.String(), err)
		}
		total.Runs += s.Runs
		total.Busy += s.Busy
		total.Reclaimed += s.Reclaimed
		total.Errors += s.Errors
		total.Failed += s.Failed
		total.BytesFreed += s.BytesFreed
		if c.stderr.Len() > 0 {
			t.Logf("collector stderr:\n%s", c.stderr.String())
		}
	}

	if !released.alive() {
		t.Errorf("released runner of %s died during the test", released.dir)
	}
	released.stop(t)
	checkSame(t, "released rootfs", filepath.Join(released.dir, "rootfs-work"), released.sum)
	if container != nil {
		container.finish(t)
	}
	nestedLost := nested.check(t, "after the collectors")
	nested.release()

	// Stop what the killed embedders left running and nobody adopted.
	leftRunning := 0
	for dir, c := range classes(t, root) {
		if c.Class != gc.ClassLive {
			continue
		}
		p, err := runner.Attach(dir)
		if err != nil {
			t.Logf("attach %s: %v", dir, err)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := p.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", dir, err)
		}
		cancel()
		leftRunning++
	}
	unrecorded := killStandins(t, root)

	rep, err := gc.Collect(root)
	if err != nil {
		t.Fatalf("final collect: %v", err)
	}
	for _, pe := range rep.Errors {
		t.Errorf("final collect error: %v", &pe)
	}
	cl := classes(t, root)
	byClass := map[gc.Class]int{}
	for dir, c := range cl {
		byClass[c.Class]++
		if c.Class != gc.ClassStopped {
			t.Errorf("after the final collect %s is %s (%s: %s)", dir, c.Class, c.Reason, c.Detail)
		}
	}
	if left := trashEntries(t, root); len(left) != 0 {
		t.Errorf("after the final collect the trash holds %v", left)
	}
	lines := reportLines(t, report)
	for _, l := range lines {
		t.Errorf("stand-in saw a loss: %s", l)
	}

	ev := tallyEvents(t, top)
	for _, k := range sortedKeys(ev) {
		if strings.HasSuffix(k, "-error") {
			t.Errorf("embedder event %s happened %d times", k, ev[k])
		}
	}
	t.Logf("%v, %d embedders, %d collectors on one root", dur, embedders, collectors)
	t.Logf("VMs created %d; runners SIGKILLed %d; embedders SIGKILLed %d by the test, %d by themselves mid-clone",
		ev["created"], ev["killed-runner"], embedderKills, ev["self-kill"])
	t.Logf("VMs stopped cleanly %d (+%d adopted by a restarted embedder, +%d left running at the end, +%d runners never recorded)",
		ev["stopped"], ev["adopted-stopped"], leftRunning, unrecorded)
	t.Logf("collections run %d, busy %d, failed %d, errors %d; orphans reclaimed %d (+%d by the final collect), %d bytes freed",
		total.Runs, total.Busy, total.Failed, total.Errors, total.Reclaimed, len(rep.Reclaimed), total.BytesFreed+rep.BytesFreed)
	if at := nested.locations(); len(at) != 0 {
		t.Errorf("nested directory still at %q after its lease ended and the final collect", at)
	}
	t.Logf("end state: %v; files lost (stand-in reports): %d; nested live directory: %d lost", byClass, len(lines), nestedLost)
	t.Logf("all embedder events: %v", ev)
	if ev["created"] == 0 || total.Runs == 0 {
		t.Errorf("nothing happened: %d VMs created, %d collections", ev["created"], total.Runs)
	}
}

// tallyEvents counts the first word of every line of the embedders' event
// logs under top.
func tallyEvents(t *testing.T, top string) map[string]int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(top, "events-*"))
	m := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			word, rest, _ := strings.Cut(sc.Text(), " ")
			m[word]++
			if strings.HasSuffix(word, "-error") || strings.HasSuffix(word, "-failed") || word == "remove-race" {
				t.Logf("%s: %s %s", filepath.Base(f), word, rest)
			}
		}
	}
	return m
}

func sortedKeys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// waitGuard waits for cmd, SIGKILLing it when it has not exited within guard.
func waitGuard(cmd *exec.Cmd, guard time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(guard):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("still running after %v, killed", guard)
	}
}

// killStandins SIGKILLs, by PID, every stand-in runner whose configuration
// names a path under root (ones whose embedder died before recording them),
// and returns how many it found.
func killStandins(t *testing.T, root string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	needle := []byte(`"root_path":"` + root + "/")
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, needle) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil || !errors.Is(err, syscall.ESRCH) {
			t.Logf("killed stand-in %d left running under %s", pid, root)
			n++
			waitGone(t, pid)
		}
	}
	return n
}

// waitGone waits until pid has exited (gone or a zombie), so the kernel
// has released its descriptors, and with them its run lease.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		info, err := procinfo.Lookup(pid)
		if errors.Is(err, procinfo.ErrNotExist) || (err == nil && info.Zombie) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Errorf("pid %d still running 10s after SIGKILL", pid)
}

// newSlotRand returns the random source of one embedder slot of the test.
func newSlotRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 1))
}
