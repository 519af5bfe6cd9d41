// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"log/slog"
	"os"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/claim"
)

// Defaults of the claim options.
const (
	// DefaultCollectBudget bounds the deletion work of the collection that
	// NewClaim runs; it is gc.BeforeCreate's budget too.
	DefaultCollectBudget = gc.DefaultCreateBudget
	// DefaultStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	DefaultStopTimeout = 10 * time.Second
	// DefaultLeaseTimeout is how long NewClaim waits for the run lease, which
	// a collector holds only while it decides about the directory.
	DefaultLeaseTimeout = claim.LeaseWait
	// DefaultLockTimeout is how long the state lock is waited for.
	DefaultLockTimeout = claim.LockWait
)

// killWait bounds the wait for a runner to vanish after SIGKILL.
const killWait = 5 * time.Second

// ClaimOption configures NewClaim (and Attach where it applies).
type ClaimOption func(*claimOptions)

type claimOptions struct {
	logger        *slog.Logger
	collect       bool
	collectRoot   string
	collectBudget time.Duration
	collectOpts   []gc.Option
	stopTimeout   time.Duration
	leaseTimeout  time.Duration
	lockTimeout   time.Duration
	runnerPath    string

	name     string
	image    string
	cpus     uint32
	memoryMB uint32

	hooks hooks
}

// hooks are where tests act inside windows that are otherwise a matter of
// luck; every field is nil outside tests. They travel with the options
// (set by withHooks) rather than in package variables, so tests that use
// them run in parallel.
type hooks struct {
	// mkdirAll replaces os.MkdirAll in NewClaim, to make the removal of
	// a parent inside it certain.
	mkdirAll func(path string, perm os.FileMode) error
	// beforeLease runs between creating the data directory and taking
	// its lease: where a collector may remove it.
	beforeLease func(dir string)
	// leased runs in NewClaim between taking the lease and setting the
	// run marker: where the directory may be replaced.
	leased func(dir string)
	// started runs in Spawn after the runner has started and before it
	// is recorded: the window in which an embedder killed leaves a runner
	// that only Attach's recovery can find.
	started func(pid int)
	// terminated runs in Stop once the runner is gone and before its stop
	// is recorded: the run marker is still set and the lease may already
	// be free, so only the state lock keeps collectors off.
	terminated func(dir string)
}

// withHooks sets the test hooks.
func withHooks(h hooks) ClaimOption {
	return func(o *claimOptions) { o.hooks = h }
}

func newOptions(opts []ClaimOption) claimOptions {
	o := claimOptions{
		logger:        slog.New(slog.DiscardHandler),
		collect:       true,
		collectBudget: DefaultCollectBudget,
		stopTimeout:   DefaultStopTimeout,
		leaseTimeout:  DefaultLeaseTimeout,
		lockTimeout:   DefaultLockTimeout,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// WithLogger sets the logger for the collection, the claim and the stop
// (default: discard).
func WithLogger(l *slog.Logger) ClaimOption { return func(o *claimOptions) { o.logger = l } }

// WithoutCollect skips the collection that NewClaim runs before claiming.
func WithoutCollect() ClaimOption { return func(o *claimOptions) { o.collect = false } }

// WithCollectRoot sets the root collected by NewClaim (default: the data
// directory itself, the one directory known to be go-microvm's). Embedders
// that keep one data directory per VM, at root/<name> or root/<name>/data,
// pass their root here, so the collection covers every VM.
func WithCollectRoot(root string) ClaimOption {
	return func(o *claimOptions) { o.collectRoot = root }
}

// WithCollectBudget bounds the deletion work of NewClaim's collection
// (default DefaultCollectBudget); what does not fit is left for the next
// collection.
func WithCollectBudget(d time.Duration) ClaimOption {
	return func(o *claimOptions) { o.collectBudget = d }
}

// WithCollectOptions passes further options to NewClaim's collection (for
// example gc.WithDepth); they apply after the budget and logger.
func WithCollectOptions(opts ...gc.Option) ClaimOption {
	return func(o *claimOptions) { o.collectOpts = append(o.collectOpts, opts...) }
}

// WithStopTimeout sets how long Stop waits after SIGTERM before SIGKILL
// (default DefaultStopTimeout).
func WithStopTimeout(d time.Duration) ClaimOption {
	return func(o *claimOptions) { o.stopTimeout = d }
}

// WithLeaseTimeout sets how long NewClaim waits for the run lease before it
// gives up with ErrInUse (default DefaultLeaseTimeout).
func WithLeaseTimeout(d time.Duration) ClaimOption {
	return func(o *claimOptions) { o.leaseTimeout = d }
}

// WithRunnerPath names the runner executable that Attach accepts, besides
// any executable named RunnerName, when it must find a runner that was
// never recorded (see Attach). Embedders that start a runner under another
// name pass its path here, as given in Config.RunnerPath.
func WithRunnerPath(path string) ClaimOption {
	return func(o *claimOptions) { o.runnerPath = path }
}

// WithName records the VM name in the state file.
func WithName(name string) ClaimOption { return func(o *claimOptions) { o.name = name } }

// WithImage records the image reference in the state file.
func WithImage(image string) ClaimOption { return func(o *claimOptions) { o.image = image } }

// WithResources records the vCPU count and memory size in the state file;
// without it Spawn records the Config's NumVCPUs and RAMMiB.
func WithResources(cpus, memoryMB uint32) ClaimOption {
	return func(o *claimOptions) { o.cpus = cpus; o.memoryMB = memoryMB }
}
