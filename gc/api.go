// SPDX-License-Identifier: Apache-2.0

// THIS FILE IS THE AGREED API SKELETON. The gc helper replaces the panics
// with real code split into doc.go, options.go, scan.go (observe),
// classify.go (pure), collect.go (reclaim), trash.go; names and signatures
// below are relied on by package runner and cmd/go-microvm-gc. Adding is
// fine; changing needs the coordinator.

package gc

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ErrBusy is returned by Collect when another collector holds the root lock.
var ErrBusy = errors.New("another collector holds the root lock")

// Collector-owned names below root.
const (
	LockName  = ".go-microvm-gc.lock"
	TrashName = ".go-microvm-gc-trash"
	// OwnPrefix: names starting with it are the collector's own, never candidates.
	OwnPrefix = ".go-microvm-gc"
)

// Class is the verdict on one candidate data directory.
type Class string

const (
	ClassLive       Class = "live"
	ClassBusy       Class = "busy"
	ClassOrphan     Class = "orphan"
	ClassStopped    Class = "stopped"
	ClassUnknown    Class = "unknown"
	ClassUnreadable Class = "unreadable"
)

// Reason says why a candidate got its class. (The gc helper defines the
// full set of typed constants, e.g. ReasonLeaseHeld, ReasonStateLocked,
// ReasonRunEnded, ReasonRebooted, ReasonRunnerDead, ReasonRunnerZombie,
// ReasonPIDReused, ReasonRunnerMatches, ReasonIdentityUnreadable,
// ReasonNoPID, ReasonInactive, ReasonStoppedExpired, ReasonUnreadable...)
type Reason string

// Candidate is one data directory found under root, with its verdict.
type Candidate struct {
	Path   string // absolute path of the data directory
	Class  Class
	Reason Reason
	Detail string // human detail, e.g. the parse error or "pid 123 started 5s after record"
	PID    int
	Name   string        // VM name from the state, if readable
	Age    time.Duration // since CreatedAt (or state file mtime when unset)
	Bytes  int64         // allocated bytes of what go-microvm owns in it; -1 unless WithSizes
	Err    error         // the read error for ClassUnreadable
}

// Orphan is a data directory Collect would reclaim (or has reclaimed).
type Orphan struct {
	Path   string
	Reason Reason
	PID    int
	Bytes  int64 // bytes freed (Collect) or allocated (Orphans with WithSizes); else 0
}

// PathError is one failure in a sweep, naming its path.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// Report is the outcome of Collect.
type Report struct {
	Root       string
	Reclaimed  []Orphan
	Kept       []Candidate // every candidate not reclaimed, with class and reason
	Errors     []PathError
	BytesFreed int64
	// Deferred is true when the deletion budget ran out; the rest (orphans
	// or trash) is left for the next run, still reclaimable.
	Deferred bool
	// DryRun echoes WithDryRun.
	DryRun bool
}

// Option configures Scan, Orphans and Collect.
type Option func(*options)

type options struct {
	logger     *slog.Logger
	depth      int
	stopped    bool
	stoppedAge time.Duration
	budget     time.Duration
	sizes      bool
	dryRun     bool
	now        func() time.Time
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDepth sets how deep below root candidates are looked for (default 2:
// root itself, root/x and root/x/y).
func WithDepth(n int) Option { return func(o *options) { o.depth = n } }

// WithStopped makes cleanly stopped (inactive) data directories older than
// minAge reclaimable. Off by default.
func WithStopped(minAge time.Duration) Option {
	return func(o *options) { o.stopped = true; o.stoppedAge = minAge }
}

// WithBudget bounds the deletion work of Collect; what does not fit is left
// for the next run (Report.Deferred).
func WithBudget(d time.Duration) Option { return func(o *options) { o.budget = d } }

// WithSizes makes Scan/Orphans measure allocated bytes (costs a tree walk).
func WithSizes() Option { return func(o *options) { o.sizes = true } }

// WithDryRun makes Collect decide and report without changing anything.
func WithDryRun() Option { return func(o *options) { o.dryRun = true } }

// Scan classifies every candidate under root. Read-only.
func Scan(root string, opts ...Option) ([]Candidate, error) {
	return ScanContext(context.Background(), root, opts...)
}

// ScanContext is Scan with a context.
func ScanContext(ctx context.Context, root string, opts ...Option) ([]Candidate, error) {
	panic("not implemented")
}

// Orphans lists what Collect would reclaim now. Read-only: creates no file
// or directory, works on a read-only filesystem.
func Orphans(root string, opts ...Option) ([]Orphan, error) {
	return OrphansContext(context.Background(), root, opts...)
}

// OrphansContext is Orphans with a context.
func OrphansContext(ctx context.Context, root string, opts ...Option) ([]Orphan, error) {
	panic("not implemented")
}

// Collect reclaims orphans under root. ErrBusy (with a nil report) when
// another collector holds the root lock.
func Collect(root string, opts ...Option) (*Report, error) {
	return CollectContext(context.Background(), root, opts...)
}

// CollectContext is Collect with a context.
func CollectContext(ctx context.Context, root string, opts ...Option) (*Report, error) {
	panic("not implemented")
}
