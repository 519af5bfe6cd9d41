// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stacklok/go-microvm/internal/claim"
	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// Attach returns a handle for the runner an earlier process recorded in
// dataDir, only if the live process at its PID has the recorded identity;
// the handle's Stop never signals a recycled PID. A runner started but never
// recorded is found, on Linux, as this user's one session leader named
// RunnerName holding the lease, and recorded. It returns ErrNotRunning when
// a collector would call the runner gone, ErrUnattachable when a lease
// holder exists but cannot be found (it stays live for collectors), and
// another error when the identity cannot be confirmed or the state read or
// saved. WithLogger, WithStopTimeout and WithRunnerPath apply.
func Attach(dataDir string, opts ...ClaimOption) (*Process, error) {
	o := newOptions(opts)
	mgr := state.NewManager(dataDir)
	st, err := mgr.Load()
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", dataDir, err)
	}
	if st.Leased && st.PID <= 0 {
		return adopt(dataDir, mgr, o)
	}
	pr, err := verifyRecord(st)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", dataDir, err)
	}
	return attached(dataDir, mgr, st, pr.StartTime, o), nil
}

// attached is the handle of the runner that st records, with the kernel
// start time observed for it.
func attached(dir string, mgr *state.Manager, st *state.State, startTime uint64, o claimOptions) *Process {
	return &Process{
		pid:         st.PID,
		startTime:   startTime,
		pidStarted:  st.PIDStartTime,
		pidNS:       pidNamespace(),
		dataDir:     dir,
		mgr:         mgr,
		logger:      o.logger,
		stopTimeout: o.stopTimeout,
		lockTimeout: o.lockTimeout,
		hooks:       o.hooks,
	}
}

// adopt is Attach's recovery of a leased run with no pid recorded.
func adopt(dir string, mgr *state.Manager, o claimOptions) (*Process, error) {
	// Not LoadAndLock: it would create a directory that a collector just
	// removed.
	ls, err := claim.LockExisting(context.Background(), mgr, o.lockTimeout)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("attach %s: %w: data directory is gone", dir, ErrNotRunning)
	}
	if err != nil {
		return nil, fmt.Errorf("attach %s: lock state: %w", dir, err)
	}
	defer ls.Release()
	if !ls.Leased || ls.PID > 0 {
		// While we waited for the lock, the embedder recorded its runner,
		// or the run was stopped.
		pr, err := verifyRecord(ls.State)
		if err != nil {
			return nil, fmt.Errorf("attach %s: %w", dir, err)
		}
		return attached(dir, mgr, ls.State, pr.StartTime, o), nil
	}
	info, err := runnerByLease(dir, o)
	if err != nil {
		// A runner that died during the search freed its lease: the run
		// ended, and that, not the failed search, is the answer.
		if held, perr := state.ProbeLease(dir); perr == nil && !held {
			return nil, fmt.Errorf("attach %s: %w: run marker set, no pid recorded, and the lease is free", dir, ErrNotRunning)
		}
		return nil, fmt.Errorf("attach %s: %w", dir, err)
	}
	boot, err := procinfo.BootID()
	if err != nil {
		o.logger.Warn("reading boot id", "error", err)
	}
	ls.Active = true
	ls.PID = info.PID
	ls.PIDStartTime = time.Now()
	ls.Runner = &state.Identity{StartTime: info.StartTime, BootID: boot, Executable: info.Executable, PIDNamespace: pidNamespace()}
	if err := ls.Save(); err != nil {
		return nil, fmt.Errorf("attach %s: record recovered runner pid %d: %w", dir, info.PID, err)
	}
	o.logger.Info("recovered an unrecorded runner by its lease", "dir", dir, "pid", info.PID)
	return attached(dir, mgr, ls.State, info.StartTime, o), nil
}

// runnerByLease finds the runner among the processes holding a descriptor
// on dir, with the lease known to be held. It returns an error wrapping
// ErrNotRunning when nothing holds dir any more, and one wrapping
// ErrUnattachable when no holder, or more than one, is a runner.
func runnerByLease(dir string, o claimOptions) (procinfo.Info, error) {
	want, err := os.Stat(dir)
	if err != nil {
		return procinfo.Info{}, fmt.Errorf("stat data directory: %w", err)
	}
	holders, err := dirHolders(dir, want)
	if err != nil {
		return procinfo.Info{}, err
	}
	var found []procinfo.Info
	var others []string
	for _, pid := range holders {
		info, err := procinfo.Lookup(pid)
		if err != nil || info.Zombie {
			continue
		}
		if !o.acceptsRunner(info) {
			others = append(others, fmt.Sprintf("pid %d (%s)", pid, processName(info)))
			continue
		}
		if sid, err := sessionID(pid); err != nil || sid != pid {
			others = append(others, fmt.Sprintf("pid %d (%s, not a session leader)", pid, processName(info)))
			continue
		}
		// The PID must still name the process that held the descriptor:
		// seen with one start time before and after it is seen holding it.
		if !holdsDir(pid, dir, want) {
			continue
		}
		if again, err := procinfo.Lookup(pid); err != nil || again.StartTime != info.StartTime {
			continue
		}
		found = append(found, info)
	}
	return onlyRunner(found, others)
}

// onlyRunner returns the one runner found among a lease's holders, or the
// error wrapping ErrUnattachable that says why there is not exactly one;
// others describes the holders that are not runners.
func onlyRunner(found []procinfo.Info, others []string) (procinfo.Info, error) {
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		pids := make([]string, len(found))
		for i, f := range found {
			pids[i] = fmt.Sprint(f.PID)
		}
		return procinfo.Info{}, fmt.Errorf("%w: several runners hold the lease: pids %s", ErrUnattachable, strings.Join(pids, ", "))
	case len(others) > 0:
		return procinfo.Info{}, fmt.Errorf("%w: the lease is held by %s, none of them a runner", ErrUnattachable, strings.Join(others, ", "))
	}
	return procinfo.Info{}, fmt.Errorf("%w: no process of this user found holding the lease", ErrUnattachable)
}

// acceptsRunner reports whether info runs a runner executable: one named
// RunnerName, or the WithRunnerPath one.
func (o claimOptions) acceptsRunner(info procinfo.Info) bool {
	if judge.NamedAs(processName(info), RunnerName) {
		return true
	}
	if o.runnerPath == "" || info.Executable == "" {
		return false
	}
	want, err := filepath.Abs(o.runnerPath)
	if err != nil {
		return false
	}
	// The kernel reports the executable with symlinks resolved.
	if resolved, err := filepath.EvalSymlinks(want); err == nil {
		want = resolved
	}
	return info.Executable == want
}
