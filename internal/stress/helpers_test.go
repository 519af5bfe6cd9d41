// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/runner"
	"github.com/stacklok/go-microvm/state"
)

// collectSummary is what a collector helper prints about its work.
type collectSummary struct {
	Runs       int   `json:"runs"`
	Busy       int   `json:"busy"`
	Reclaimed  int   `json:"reclaimed"`
	Errors     int   `json:"errors"`
	Failed     int   `json:"failed"`
	BytesFreed int64 `json:"bytes_freed"`
	Deferred   int   `json:"deferred"`
}

func (s *collectSummary) add(rep *gc.Report, err error) {
	s.Runs++
	switch {
	case errors.Is(err, gc.ErrBusy):
		s.Busy++
	case err != nil:
		s.Failed++
	}
	if rep != nil {
		s.Reclaimed += len(rep.Reclaimed)
		s.Errors += len(rep.Errors)
		s.BytesFreed += rep.BytesFreed
		if rep.Deferred {
			s.Deferred++
		}
	}
}

// helperCollect runs one Collect over STRESS_ROOT. It prints "start" just
// before and "done" with a summary just after, so the test that kills it
// knows which phase the kill landed in.
func helperCollect() int {
	root := os.Getenv(envRoot)
	fmt.Println("start")
	rep, err := gc.Collect(root)
	var s collectSummary
	s.add(rep, err)
	b, _ := json.Marshal(s)
	fmt.Printf("done %s\n", b)
	if rep != nil {
		for _, pe := range rep.Errors {
			fmt.Fprintf(os.Stderr, "collect error: %v\n", pe)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "collect: %v\n", err)
		return 1
	}
	return 0
}

// helperCollectLoop runs Collect over STRESS_ROOT in a loop until
// STRESS_DEADLINE, then prints its summary as JSON.
func helperCollectLoop() int {
	root := os.Getenv(envRoot)
	deadline := helperDeadline()
	r := helperRand()
	var s collectSummary
	for time.Now().Before(deadline) {
		rep, err := gc.Collect(root)
		s.add(rep, err)
		if err != nil && !errors.Is(err, gc.ErrBusy) {
			fmt.Fprintf(os.Stderr, "collect: %v\n", err)
		}
		if rep != nil {
			for _, pe := range rep.Errors {
				fmt.Fprintf(os.Stderr, "collect error: %v\n", pe)
			}
		}
		time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
	}
	b, _ := json.Marshal(s)
	fmt.Printf("%s\n", b)
	return 0
}

// helperHold takes the run lease (lease true) or the state lock of
// STRESS_TARGET, prints "ready" and holds it until killed.
func helperHold(lease bool) int {
	dir := os.Getenv(envTarget)
	if lease {
		l, err := state.TryLease(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "lease %s: %v\n", dir, err)
			return 1
		}
		defer l.Close()
	} else {
		ls, err := state.NewManager(dir).TryLoadAndLock()
		if err != nil {
			fmt.Fprintf(os.Stderr, "lock state of %s: %v\n", dir, err)
			return 1
		}
		defer ls.Release()
	}
	fmt.Println("ready")
	select {}
}

func helperDeadline() time.Time {
	ns, _ := strconv.ParseInt(os.Getenv(envDeadline), 10, 64)
	return time.Unix(0, ns)
}

// helperRand seeds a helper's random source from the test's seed and the
// helper's identity, so a replayed seed replays the same choices.
func helperRand() *rand.Rand {
	seed, _ := strconv.ParseUint(os.Getenv("STRESS_SEED"), 10, 64)
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%s/%d", helperMode, os.Getenv(envWorker), os.Getpid())
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// embedderVM is one VM an embedder helper started and still owns.
type embedderVM struct {
	dir, top string
	p        *runner.Process
}

// helperEmbedder plays an embedder until STRESS_DEADLINE: it claims data
// directories under STRESS_ROOT (each claim runs the pre-creation
// collection; half of them as released microvm.Run does, see below), clones a small rootfs, spawns the stand-in runner, and then
// at random stops VMs cleanly (removing their data directory, as embedders
// do), SIGKILLs their runners, or SIGKILLs itself mid-clone. Each step is
// appended to STRESS_EVENTS as one line. On start it adopts the VMs of its
// dead predecessors (same STRESS_WORKER prefix): Attach and Stop.
func helperEmbedder() int {
	root := os.Getenv(envRoot)
	worker := os.Getenv(envWorker) // "w<i>g<gen>"
	runnerPath := os.Getenv(envRunner)
	deadline := helperDeadline()
	r := helperRand()
	ev, err := os.OpenFile(os.Getenv(envEvents), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "open events: %v\n", err)
		return 1
	}
	event := func(format string, args ...any) {
		// One write per line: O_APPEND keeps lines whole when the process
		// is killed between two events.
		fmt.Fprintf(ev, format+"\n", args...)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ctx := context.Background()

	adoptPredecessors(ctx, root, worker, event)

	var live []embedderVM
	stop := func(v embedderVM) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := v.p.Stop(sctx); err != nil {
			event("stop-error %q %v", v.dir, err)
			return
		}
		event("stopped %q", v.dir)
		removeDataDir(v.top, event)
	}
	n := 0
loop:
	for time.Now().Before(deadline) {
		select {
		case <-term:
			break loop
		default:
		}
		if len(live) < 3 && (len(live) == 0 || r.IntN(2) == 0) {
			n++
			top := filepath.Join(root, fmt.Sprintf("%s-%d", worker, n))
			dir := top
			if r.IntN(3) == 0 {
				dir = filepath.Join(top, "data")
			}
			// Half the VMs are created the way released microvm.Run
			// creates them, with gc.BeforeCreate(root,
			// gc.WithCreating(dir)) as its check; the others through a
			// claim. Either way the root holds one directory per VM: the
			// collection covers every VM, not only the one being claimed.
			viaRun := r.IntN(2) == 0
			var (
				c     *runner.Claim
				abort func()
				err   error
			)
			if viaRun {
				err = gc.BeforeCreate(root, gc.WithCreating(dir))(ctx)
				abort = func() { state.Kept(dir).Close() }
			} else {
				c, err = runner.NewClaim(ctx, dir, runner.WithCollectRoot(root))
				abort = func() { c.Abort() }
			}
			if err != nil {
				event("claim-error %q %v", dir, err)
				continue
			}
			if viaRun {
				event("claimed-by-check %q", dir)
			} else {
				event("claimed %q", dir)
			}
			rootfs := filepath.Join(dir, "rootfs-work")
			if _, err := makeTree(rootfs, r, 20+r.IntN(80), 3); err != nil {
				event("clone-error %q %v", dir, err)
				abort()
				continue
			}
			if r.IntN(40) == 0 {
				event("self-kill %q", dir)
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
			cfg := runner.Config{
				RootPath:   rootfs,
				NumVCPUs:   1,
				RAMMiB:     64,
				ConsoleLog: filepath.Join(dir, "console.log"),
				RunnerPath: runnerPath,
				VMLogPath:  filepath.Join(dir, "vm.log"),
			}
			var p *runner.Process
			if viaRun {
				p, err = runner.SpawnProcess(ctx, cfg)
				if err == nil {
					err = releasedSave(ctx, dir, p.PID())
				}
			} else {
				p, err = c.Spawn(ctx, cfg)
			}
			if err != nil {
				event("spawn-error %q %v", dir, err)
				abort()
				continue
			}
			event("created %q %d", dir, p.PID())
			live = append(live, embedderVM{dir: dir, top: top, p: p})
		} else if len(live) > 0 {
			i := r.IntN(len(live))
			v := live[i]
			live = append(live[:i], live[i+1:]...)
			if r.IntN(2) == 0 {
				stop(v)
			} else {
				syscall.Kill(v.p.PID(), syscall.SIGKILL)
				event("killed-runner %q %d", v.dir, v.p.PID())
			}
		}
		time.Sleep(time.Duration(10+r.IntN(90)) * time.Millisecond)
	}
	for _, v := range live {
		stop(v)
	}
	event("exit")
	return 0
}

// releasedSave records the runner as released microvm.Run does just after
// the spawn: load, set active, pid and pid_start_time, save.
func releasedSave(ctx context.Context, dir string, pid int) error {
	ls, err := state.NewManager(dir).LoadAndLock(ctx)
	if err != nil {
		return err
	}
	defer ls.Release()
	ls.Active = true
	ls.PID = pid
	ls.PIDStartTime = time.Now().UTC()
	return ls.Save()
}

// adoptPredecessors stops the VMs left running by earlier generations of
// this worker (killed by the test), the way a restarted embedder would, and
// removes the data directories it owns that hold no run: stopped ones and
// claims that died before any state was written. Like any embedder, it
// deletes a data directory only while holding its run lease: a runner
// spawned by a predecessor killed before it recorded the PID cannot be
// attached, but holds the lease, and its files must stay. Orphans are left
// to gc.
func adoptPredecessors(ctx context.Context, root, worker string, event func(string, ...any)) {
	prefix := worker[:strings.IndexByte(worker, 'g')+1] // "w<i>g"
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, prefix) || strings.HasPrefix(name, worker+"-") {
			continue
		}
		top := filepath.Join(root, name)
		dir := top
		if _, err := os.Lstat(filepath.Join(top, "data")); err == nil {
			dir = filepath.Join(top, "data")
		}
		if p, err := runner.Attach(dir); err == nil && p.IsAlive() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err = p.Stop(sctx)
			cancel()
			if err != nil {
				event("adopt-stop-error %q %v", dir, err)
				continue
			}
			event("adopted-stopped %q", dir)
		}
		lease, err := state.TryLease(dir)
		if errors.Is(err, state.ErrLocked) {
			event("left-leased %q", dir)
			continue
		}
		if err != nil {
			event("lease-failed %q %v", dir, err)
			continue
		}
		s, err := state.ReadFile(filepath.Join(dir, state.FileName))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			event("removed-stateless %q", dir)
			removeDataDir(top, event)
		case err == nil && !s.Active && !s.Leased:
			event("removed-stopped %q", dir)
			removeDataDir(top, event)
		default:
			event("left-for-gc %q", dir)
		}
		lease.Close()
	}
}

// removeDataDir removes a data directory the embedder is done with, as
// embedders do after a clean stop. A collector that read the state just
// before the stop may still take the state lock, re-creating the lock file
// inside a directory being removed (its verdict under the lock is "not an
// orphan", so it deletes nothing); RemoveAll then fails with ENOTEMPTY.
// That race is counted as "remove-race" and the removal retried.
func removeDataDir(top string, event func(string, ...any)) {
	err := os.RemoveAll(top)
	for i := 0; err != nil && errors.Is(err, syscall.ENOTEMPTY) && i < 5; i++ {
		event("remove-race %q %v", top, err)
		time.Sleep(20 * time.Millisecond)
		err = os.RemoveAll(top)
	}
	if err != nil {
		event("remove-error %q %v", top, err)
	}
}
