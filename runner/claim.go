// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/claim"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// Claim is a creation claim on a data directory: the run lease is held and
// the run marker is set. Its methods are safe for concurrent use.
type Claim struct {
	dataDir string
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
	lease, err := claim.Take(ctx, dir, claim.Options{LeaseWait: o.leaseTimeout, LockWait: o.lockTimeout,
		Mark: o.mark, Logger: o.logger,
		MkdirAll: o.hooks.mkdirAll, BeforeLease: o.hooks.beforeLease, Leased: o.hooks.leased})
	if err != nil {
		return nil, err
	}
	return &Claim{dataDir: dir, opts: o, lease: lease}, nil
}

// collectBefore is the pre-creation collection over root:
// gc.BeforeCreate's, bounded by the claim's budget, logged to its logger.
// It never fails the claim; a ctx that ends shows in the lease's wait.
func collectBefore(root string, o claimOptions) func(context.Context) error {
	return gc.BeforeCreate(root, append([]gc.Option{gc.WithBudget(o.collectBudget), gc.WithLogger(o.logger)}, o.collectOpts...)...)
}

// mark records the VM the options describe in the claimed state.
func (o claimOptions) mark(s *state.State) {
	s.Name = cmp.Or(o.name, s.Name)
	s.Image = cmp.Or(o.image, s.Image)
	s.CPUs = cmp.Or(o.cpus, s.CPUs)
	s.MemoryMB = cmp.Or(o.memoryMB, s.MemoryMB)
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
	ls, err := claim.Lock(ctx, c.dataDir, c.lease, c.opts.lockTimeout)
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
	ls, err := claim.Lock(context.Background(), c.dataDir, c.lease, c.opts.lockTimeout)
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
