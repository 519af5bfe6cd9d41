// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stacklok/go-microvm/internal/claim"
	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// pollInterval is how often a non-child runner is checked while waiting
// for it to exit.
const pollInterval = 10 * time.Millisecond

// ProcessHandle controls a running runner (released contract).
type ProcessHandle interface {
	Stop(ctx context.Context) error
	IsAlive() bool
	PID() int
}

// Process is a spawned (or attached) runner. Its methods are safe for
// concurrent use.
type Process struct {
	pid int
	// startTime is the kernel start time token observed for pid; 0 when the
	// platform could not tell, and then pidStarted is the weaker evidence.
	startTime  uint64
	pidStarted time.Time
	// pidNS is the PID namespace the handle was made in, where pid is the
	// runner's (0 when unknown).
	pidNS uint64
	// exited is closed once our reaper has reaped the runner; nil when the
	// runner is not our child (attached).
	exited chan struct{}

	dataDir     string
	mgr         *state.Manager // nil when there is no data directory
	logger      *slog.Logger
	stopTimeout time.Duration
	lockTimeout time.Duration
	hooks       hooks // tests only

	stopMu  sync.Mutex // serialises Stop and Close
	stopped atomic.Bool
	mu      sync.Mutex
	lease   *state.Lease // the creator's kept copy, until Stop or Close
}

var _ ProcessHandle = (*Process)(nil)

// newSpawned builds the Process of a runner we started; c is nil without a
// claim.
func newSpawned(st *started, c *Claim, o claimOptions) *Process {
	p := &Process{
		pid:         st.pid,
		pidStarted:  st.at,
		pidNS:       pidNamespace(),
		exited:      st.exited,
		logger:      o.logger,
		stopTimeout: o.stopTimeout,
		lockTimeout: o.lockTimeout,
		hooks:       o.hooks,
	}
	if st.infoOK {
		p.startTime = st.info.StartTime
	}
	if c != nil {
		p.dataDir = c.dataDir
		p.mgr = state.NewManager(c.dataDir)
	}
	return p
}

// PID implements ProcessHandle: the runner's process id.
func (p *Process) PID() int { return p.pid }

// DataDir returns the data directory of a claimed or attached runner, ""
// for one started by SpawnProcess.
func (p *Process) DataDir() string { return p.dataDir }

// IsAlive implements ProcessHandle. When the state carries the run marker
// for this runner, the answer is whether the run lease is held; otherwise,
// and while this process still keeps its own copy of the lease, it is
// whether the PID still names the runner (same kernel start time) and the
// runner is not a zombie. An unreadable identity counts as alive.
func (p *Process) IsAlive() bool {
	if p.stopped.Load() {
		return false
	}
	p.mu.Lock()
	kept := p.lease != nil
	p.mu.Unlock()
	if p.mgr != nil && !kept {
		if st, err := p.mgr.Load(); err == nil && st.Leased && st.PID == p.pid {
			if held, err := state.ProbeLease(p.dataDir); err == nil {
				return held
			}
		}
	}
	switch p.observe() {
	case running, unknown:
		return true
	default:
		return false
	}
}

// Close lets go of the creator's copy of the run lease (see Spawn),
// leaving the runner running: the data directory is then kept only while
// the runner lives. It returns the close error, and nil when no copy is
// kept or on a second call.
func (p *Process) Close() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	return p.dropLease()
}

func (p *Process) dropLease() error {
	p.mu.Lock()
	lease := p.lease
	p.lease = nil
	p.mu.Unlock()
	if lease == nil {
		return nil
	}
	if err := lease.Close(); err != nil {
		return fmt.Errorf("close run lease of %s: %w", p.dataDir, err)
	}
	return nil
}

// Stop sends SIGTERM, then after the stop timeout or when ctx is done
// SIGKILL, to the runner's process group, each only while the PID still
// names the runner; it then records a clean stop under the state lock and
// lets go of the creator's lease. It returns ErrStillRunning (state
// untouched) when the runner survives SIGKILL, and a state error when the
// stop cannot be recorded; a vanished data directory is not an error.
// Further calls return nil.
func (p *Process) Stop(ctx context.Context) error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.stopped.Load() {
		return nil
	}
	ls, lockErr := p.lockState(ctx)
	if ls != nil {
		defer ls.Release()
	}
	if err := p.terminate(ctx); err != nil {
		return errors.Join(err, lockErr)
	}
	if p.hooks.terminated != nil {
		p.hooks.terminated(p.dataDir)
	}
	var saveErr, keptErr error
	if ls != nil && p.ownsRecord(ls.State) {
		ls.Active = false
		ls.PID = 0
		ls.PIDStartTime = time.Time{}
		ls.Leased = false
		ls.Runner = nil
		if err := ls.Save(); err != nil {
			saveErr = fmt.Errorf("stop runner: record stop in %s: %w", p.dataDir, err)
		}
		// The run is over: this process, if it created it, lets go too,
		// whichever of its handles stopped the runner.
		keptErr = state.Kept(p.dataDir).Close()
	}
	p.stopped.Store(true)
	return errors.Join(lockErr, saveErr, keptErr, p.dropLease())
}

// lockState takes the state lock of a runner with a data directory. A
// directory that no longer exists (a collector, or the embedder, removed
// it) has no state to update, and is not created again: the lock is taken
// without creating the directory, and a missing one yields no lock and no
// error.
func (p *Process) lockState(ctx context.Context) (*state.LockedState, error) {
	if p.mgr == nil {
		return nil, nil
	}
	// A cancelled ctx still stops the runner, and its stop is still worth
	// recording, within the lock timeout.
	ls, err := claim.LockExisting(context.WithoutCancel(ctx), p.mgr, p.lockTimeout)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		p.logger.Warn("stopping runner without its state lock", "dir", p.dataDir, "pid", p.pid, "error", err)
		return nil, fmt.Errorf("stop runner: lock state of %s: %w", p.dataDir, err)
	}
	return ls, nil
}

// ownsRecord reports whether st still describes this runner, not a later
// run in the same data directory.
func (p *Process) ownsRecord(st *state.State) bool {
	if st.PID != p.pid {
		return false
	}
	return st.Runner == nil || st.Runner.StartTime == 0 || p.startTime == 0 || st.Runner.StartTime == p.startTime
}

// terminate stops the runner's process group; nil means the runner is gone.
func (p *Process) terminate(ctx context.Context) error {
	if p.pid <= 0 {
		return nil
	}
	sent, err := p.signal(syscall.SIGTERM)
	if err != nil || !sent {
		return err
	}
	if p.waitGone(ctx, p.stopTimeout) {
		return nil
	}
	p.logger.Warn("runner did not exit after SIGTERM; sending SIGKILL",
		"pid", p.pid, "dir", p.dataDir, "timeout", p.stopTimeout)
	if _, err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if p.waitGone(context.Background(), killWait) {
		return nil
	}
	return fmt.Errorf("stop runner pid %d: %w", p.pid, ErrStillRunning)
}

// signal sends sig to the runner's process group after checking that the
// PID still names the runner. It reports whether the signal was sent; a
// gone runner is not an error.
func (p *Process) signal(sig syscall.Signal) (bool, error) {
	switch p.observe() {
	case gone:
		return false, nil
	case unknown:
		return false, fmt.Errorf("signal runner pid %d: %w", p.pid, errIdentityUnknown)
	default:
		// Running, or a zombie: the kill below is harmless to a zombie.
	}
	// The runner leads its own session and group (Setsid). A group id
	// cannot be reused while the runner holds its PID, and the runner was
	// just seen holding it.
	err := syscall.Kill(-p.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		err = syscall.Kill(p.pid, sig)
	}
	if errors.Is(err, syscall.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("signal runner pid %d with %v: %w", p.pid, sig, err)
	}
	return true, nil
}

// errIdentityUnknown: the runner's identity cannot be confirmed (unreadable,
// ambiguous, or its PID in another PID namespace), so it is not signalled,
// and its directory is not taken over.
var errIdentityUnknown = errors.New("cannot confirm process identity")

// waitGone waits up to d, or until ctx is done, for the runner to exit; a
// zombie has exited. It reports whether the runner is gone.
func (p *Process) waitGone(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if l := p.observe(); l == gone || l == zombie {
			return true
		}
		select {
		case <-p.exited: // nil for attached runners: never ready
		case <-tick.C:
		case <-timer.C:
			l := p.observe()
			return l == gone || l == zombie
		case <-ctx.Done():
			return false
		}
	}
}

// liveness is what observe finds at the runner's PID.
type liveness int

const (
	gone    liveness = iota // no process, or the PID names another process
	zombie                  // the runner exited but is not reaped yet
	running                 // the runner
	unknown                 // the identity cannot be read
)

// observe checks whether the PID still names the runner, by the identity
// decision collectors make (judge.Runner) applied to what the handle
// pinned: the kernel start time, else the time the PID was recorded.
func (p *Process) observe() liveness {
	if p.exited != nil {
		select {
		case <-p.exited:
			return gone
		default:
		}
	}
	v := judge.Runner(p.record())
	switch {
	case v.Class == judge.ClassOrphan && v.Reason == judge.ReasonRunnerZombie:
		return zombie
	case v.Class == judge.ClassOrphan:
		return gone
	case v.Class == judge.ClassLive && v.Reason == judge.ReasonRunnerMatches:
		return running
	case p.exited != nil:
		// Our child, not reaped: the PID is certainly still its.
		return running
	}
	return unknown
}

// record is the runner as the handle knows it, in the form of a state
// record, for judge.Runner.
func (p *Process) record() *state.State {
	boot, _ := procinfo.BootID()
	return &state.State{
		Active:       true,
		PID:          p.pid,
		PIDStartTime: p.pidStarted,
		Runner:       &state.Identity{StartTime: p.startTime, BootID: boot, PIDNamespace: p.pidNS},
	}
}
