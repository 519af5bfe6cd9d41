// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"log/slog"
	"time"

	"github.com/stacklok/go-microvm/internal/judge"
)

// Defaults of the options.
const (
	// DefaultDepth covers root, root/<name>/ and root/<name>/data/.
	DefaultDepth = 2
	// DefaultCreateBudget bounds the collection before a VM is created
	// (BeforeCreate's, runner.NewClaim's).
	DefaultCreateBudget = 2 * time.Second
)

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
	owned      []string // valid names only
	keep       func(dataDir string) bool
	creating   string
	progress   func(Progress)
	hooks      hooks
}

// hooks let tests act inside windows that are otherwise a matter of luck;
// all nil outside tests. They travel with the options, so tests that set
// them run in parallel.
type hooks struct {
	entered     func(rel string)  // the walk opened a directory
	reclaim     func(path string) // Collect starts on an orphan
	stateLocked func(path string) // Collect holds the state lock, before the read
	locked      func(path string) // under both locks, decided again, before the path check
	emptying    func(path string) // Collect starts deleting a committed rootfs-work
}

// runHook calls the hook h, if set, with arg.
func runHook(h func(string), arg string) {
	if h != nil {
		h(arg)
	}
}

func newOptions(opts []Option) *options {
	o := &options{depth: DefaultDepth, now: time.Now}
	for _, opt := range opts {
		opt(o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	o.depth = max(o.depth, 0)
	return o
}

func (o *options) policy() judge.Policy {
	return judge.Policy{Stopped: o.stopped, StoppedMinAge: o.stoppedAge, Veto: o.keep != nil}
}

// WithLogger sets the logger: one Info line per reclaimed directory, one
// Warn line per error, one Debug line per kept directory. The default
// discards everything; a nil logger is the default.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDepth sets how deep below root candidates are looked for (default
// DefaultDepth: root itself, root/x and root/x/y). Zero means root only; a
// negative depth is zero.
func WithDepth(n int) Option { return func(o *options) { o.depth = n } }

// WithStopped makes cleanly stopped VMs at least minAge old reclaimable
// (ReasonStoppedExpired), their age counted from the later of created_at and
// the state file's last change; one changed in the future is kept.
func WithStopped(minAge time.Duration) Option {
	return func(o *options) { o.stopped = true; o.stoppedAge = minAge }
}

// WithBudget bounds Collect's deletion work to d from the start of the
// call; what did not fit stays reclaimable by the next Collect and
// Report.Deferred is set. Zero or negative means no budget.
func WithBudget(d time.Duration) Option { return func(o *options) { o.budget = d } }

// WithSizes makes Scan and Orphans measure the allocated bytes of what
// go-microvm owns in each candidate, a tree walk each; else Bytes is -1.
func WithSizes() Option { return func(o *options) { o.sizes = true } }

// WithDryRun makes Collect change nothing and create no file; would-be
// reclaims are reported in Report.Reclaimed.
func WithDryRun() Option { return func(o *options) { o.dryRun = true } }

// WithOwnedNames names entries (single path components) the embedder owns
// in a data directory and in its parents below root: Collect removes them
// with a VM it reclaims, from a parent only when it holds nothing else, and
// never an entry holding a state file. Invalid names and go-microvm's own
// are ignored. A directory below root holding only owned entries is an
// embedder's leftovers: ReasonNoVeto without WithKeep, else ReasonLeftover.
func WithOwnedNames(names ...string) Option {
	return func(o *options) {
		for _, n := range names {
			if validOwnedName(n) {
				o.owned = append(o.owned, n)
			}
		}
	}
}

// WithKeep sets the embedder's veto: just before reclaiming a data
// directory or leftovers, under their locks, Collect calls keep with the
// absolute path and keeps it (ReasonEmbedderKeep) when keep returns true,
// panics or exits its goroutine (reported in Report.Errors). keep may run
// concurrently.
func WithKeep(keep func(dataDir string) bool) Option {
	return func(o *options) { o.keep = keep }
}

// ProgressKind says what a Progress reports.
type ProgressKind int

// The kinds of Progress.
const (
	// ProgressClassified: a scan decided a data directory's class;
	// Progress.Candidate holds it.
	ProgressClassified ProgressKind = iota + 1
	// ProgressReclaimed: Collect reclaimed an orphan (in a dry run, never
	// sent); Progress.Orphan holds it, with the bytes freed.
	ProgressReclaimed
)

// Progress is one step of a Scan, Orphans or Collect, for WithProgress.
type Progress struct {
	Kind ProgressKind
	// Candidate is set for ProgressClassified.
	Candidate Candidate
	// Orphan is set for ProgressReclaimed.
	Orphan Orphan
}

// WithProgress calls fn as each directory is classified and, in Collect,
// each orphan reclaimed. fn may run concurrently and the run waits for it.
func WithProgress(fn func(Progress)) Option { return func(o *options) { o.progress = fn } }
