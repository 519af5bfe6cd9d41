// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// maxVanished bounds how often NewClaim recreates a data directory that a
// collector removed between its creation and the lease, and how often it
// takes the lease again when the directory is removed or replaced between
// the lease and the run marker.
const maxVanished = 10

// Claim is a creation claim on a data directory: the run lease is held and
// the run marker is set. Its methods are safe for concurrent use.
type Claim struct {
	dataDir string
	mgr     *state.Manager
	opts    claimOptions

	mu    sync.Mutex
	lease *state.Lease // nil once spawned or aborted
}

// NewClaim collects the root (default dataDir itself, never its possibly
// shared parent; see WithCollectRoot), skipping or logging any failure, then
// creates dataDir, takes the run lease and sets the run marker. Call it
// before cloning the rootfs. It returns ErrInUse when a live run owns
// dataDir, and ErrClaimLost when dataDir keeps being replaced; on any error
// no lease is held and the state is unchanged.
func NewClaim(ctx context.Context, dataDir string, opts ...ClaimOption) (*Claim, error) {
	o := newOptions(opts)
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", dataDir, err)
	}
	if o.collect {
		root := o.collectRoot
		if root == "" {
			root = dir
		}
		_ = collectBefore(root, o)(ctx)
	}
	for attempt := 0; ; attempt++ {
		lease, err := acquireLease(ctx, dir, o)
		if err != nil {
			return nil, err
		}
		if o.hooks.leased != nil {
			o.hooks.leased(dir)
		}
		c := &Claim{dataDir: dir, mgr: state.NewManager(dir), opts: o, lease: lease}
		err = c.mark(ctx)
		if err == nil {
			o.logger.Debug("claimed data directory", "dir", dir)
			return c, nil
		}
		// We are the only holder, so closing our descriptor frees the lease.
		_ = lease.Close()
		if !errors.Is(err, ErrClaimLost) || attempt >= maxVanished {
			return nil, err
		}
		o.logger.Debug("data directory replaced after its lease was taken; claiming it again", "dir", dir)
	}
}

// collectBefore is the pre-creation collection over root:
// gc.BeforeCreate's, bounded by the claim's budget, logged to its logger.
// It never fails the claim; a ctx that ends shows in the lease's wait.
func collectBefore(root string, o claimOptions) func(context.Context) error {
	return gc.BeforeCreate(root, append([]gc.Option{gc.WithBudget(o.collectBudget), gc.WithLogger(o.logger)}, o.collectOpts...)...)
}

// acquireLease creates dir and takes its run lease, recreating dir when a
// collector removed it in between. A collector may also remove an empty
// parent of dir between MkdirAll's creation of the parent and of dir,
// which fails MkdirAll with ENOENT; that is retried the same way.
func acquireLease(ctx context.Context, dir string, o claimOptions) (*state.Lease, error) {
	for attempt := 0; ; attempt++ {
		if err := o.hooks.mkdirAll(dir, 0o700); err != nil {
			if errors.Is(err, fs.ErrNotExist) && attempt < maxVanished {
				o.logger.Debug("parent of data directory vanished while creating it; retrying", "dir", dir)
				continue
			}
			return nil, fmt.Errorf("claim %s: create data directory: %w", dir, err)
		}
		if o.hooks.beforeLease != nil {
			o.hooks.beforeLease(dir)
		}
		lctx, cancel := context.WithTimeout(ctx, o.leaseTimeout)
		lease, err := state.AcquireLease(lctx, dir)
		cancel()
		switch {
		case err == nil:
			return lease, nil
		case errors.Is(err, fs.ErrNotExist) && attempt < maxVanished:
			o.logger.Debug("data directory vanished while claiming it; recreating", "dir", dir)
			continue
		case ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("claim %s: %w: run lease still held after %s", dir, ErrInUse, o.leaseTimeout)
		}
		return nil, fmt.Errorf("claim %s: take run lease: %w", dir, err)
	}
}

// mark sets the run marker, with the lease held, in the leased directory
// only: an error wrapping ErrClaimLost means c.dataDir no longer names it.
func (c *Claim) mark(ctx context.Context) error {
	ls, err := c.lockLeased(ctx)
	if err != nil {
		return fmt.Errorf("claim %s: %w", c.dataDir, err)
	}
	defer ls.Release()
	// Holding the lease (and the state lock) leaves the directory exactly
	// as a collector would judge it with both free: it is claimed only
	// where a collector would not keep it as live or unknown. A released
	// runner holds no lease, and a runner may have closed its own, so
	// only the recorded identity tells, by the collectors' decision.
	if ls.Active && ls.PID > 0 {
		if v := judge.State(ls.State); v.Class == judge.ClassLive || v.Class == judge.ClassUnknown {
			return fmt.Errorf("claim %s: %w: state records runner pid %d (%s: %s)", c.dataDir, ErrInUse, ls.PID, v.Reason, v.Detail)
		}
	}
	if ls.Version == 0 {
		ls.Version = state.CurrentVersion
	}
	ls.Active = false
	ls.PID = 0
	ls.PIDStartTime = time.Time{}
	ls.Runner = nil
	ls.Leased = true
	ls.CreatedAt = time.Now()
	if c.opts.name != "" {
		ls.Name = c.opts.name
	}
	if c.opts.image != "" {
		ls.Image = c.opts.image
	}
	if c.opts.cpus != 0 {
		ls.CPUs = c.opts.cpus
	}
	if c.opts.memoryMB != 0 {
		ls.MemoryMB = c.opts.memoryMB
	}
	if err := ls.Save(); err != nil {
		return fmt.Errorf("claim %s: set run marker: %w", c.dataDir, err)
	}
	return nil
}

// Dir returns the absolute data directory of the claim.
func (c *Claim) Dir() string { return c.dataDir }

// Spawn starts the runner with the lease as descriptor 3
// (GO_MICROVM_LEASE_FD=3) and records it under the state lock; this process
// keeps its copy of the lease until the Process is stopped or closed. It
// returns ErrClaimLost (claim used up) when the data directory was replaced
// since NewClaim, and ErrClaimDone after a successful Spawn; on other
// errors nothing runs and the claim stays valid (retry, or Abort).
func (c *Claim) Spawn(ctx context.Context, cfg Config) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lease == nil {
		return nil, fmt.Errorf("spawn runner in %s: %w", c.dataDir, ErrClaimDone)
	}
	l, err := prepareRunner(ctx, cfg, c.lease.File())
	if err != nil {
		return nil, err
	}
	// Read (and cache) the boot id now, so the locked window holds no file
	// read that it can do without.
	boot, bootErr := procinfo.BootID()
	if bootErr != nil {
		c.opts.logger.Warn("reading boot id", "error", bootErr)
	}
	// The runner shares this process's PID namespace.
	ns := pidNamespace()
	ls, err := c.lockLeased(ctx)
	if err != nil {
		l.close()
		if errors.Is(err, ErrClaimLost) {
			if cerr := c.lease.Close(); cerr != nil {
				c.opts.logger.Warn("closing the run lease of a lost claim", "dir", c.dataDir, "error", cerr)
			}
			c.lease = nil
		}
		return nil, fmt.Errorf("spawn runner in %s: %w", c.dataDir, err)
	}
	st, err := l.start()
	if err != nil {
		_ = ls.Close()
		return nil, err
	}
	if c.opts.hooks.started != nil {
		c.opts.hooks.started(st.pid)
	}
	p := newSpawned(st, c, c.opts)
	err = c.record(ls, st, boot, ns, cfg)
	if err != nil {
		// Unrecorded, the runner would be found only by its lease; killing
		// it while the state lock is still held leaves the claim as it was.
		if _, kerr := p.signal(syscall.SIGKILL); kerr == nil {
			<-st.exited
		}
	}
	if rerr := ls.Close(); rerr != nil {
		c.opts.logger.Warn("releasing state lock", "dir", c.dataDir, "error", rerr)
	}
	if err != nil {
		return nil, err
	}
	// The creator keeps its copy until it exits or lets go (Stop, Close):
	// the directory is kept while the runner or its creator lives.
	if err := c.lease.Keep(c.dataDir); err != nil {
		c.opts.logger.Warn("keeping the creator's copy of the run lease", "dir", c.dataDir, "error", err)
	}
	p.lease = c.lease
	c.lease = nil
	c.opts.logger.Debug("spawned runner", "dir", c.dataDir, "pid", p.pid)
	return p, nil
}

// record writes the started runner into the locked state.
func (c *Claim) record(ls *state.LockedState, st *started, boot string, ns uint64, cfg Config) error {
	var ident *state.Identity
	if st.infoOK {
		exe := st.info.Executable
		if exe == "" {
			// The runner already exited: the path we ran, as the kernel
			// would report it.
			exe = st.exe
			if resolved, err := filepath.EvalSymlinks(exe); err == nil {
				exe = resolved
			}
		}
		ident = &state.Identity{StartTime: st.info.StartTime, BootID: boot, Executable: exe, PIDNamespace: ns}
	}
	ls.Active = true
	ls.PID = st.pid
	ls.PIDStartTime = st.at
	ls.Runner = ident
	ls.Leased = true
	if ls.CPUs == 0 {
		ls.CPUs = cfg.NumVCPUs
	}
	if ls.MemoryMB == 0 {
		ls.MemoryMB = cfg.RAMMiB
	}
	if err := ls.Save(); err != nil {
		return fmt.Errorf("spawn runner in %s: record runner: %w", c.dataDir, err)
	}
	return nil
}

// Abort ends a claim that never spawned: it clears the run marker (the
// directory reads as stopped) and drops the lease, even when the state
// cannot be saved (the next collection then reclaims it). After a Spawn or
// Abort it does nothing, so `defer claim.Abort()` is safe.
func (c *Claim) Abort() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lease == nil {
		return nil
	}
	var saveErr error
	ls, err := c.lockLeased(context.Background())
	lease := c.lease
	c.lease = nil
	switch {
	case errors.Is(err, ErrClaimLost):
		// The marker, if any, is in a directory that is gone or elsewhere;
		// dropping the lease is all that is left to do.
	case err != nil:
		saveErr = fmt.Errorf("abort claim %s: %w", c.dataDir, err)
	default:
		if ls.Leased && ls.PID == 0 {
			ls.Leased = false
			ls.Active = false
			if err := ls.Save(); err != nil {
				saveErr = fmt.Errorf("abort claim %s: clear run marker: %w", c.dataDir, err)
			}
		}
		_ = ls.Close()
	}
	var closeErr error
	if err := lease.Close(); err != nil {
		closeErr = fmt.Errorf("abort claim %s: drop lease: %w", c.dataDir, err)
	}
	return errors.Join(saveErr, closeErr)
}
