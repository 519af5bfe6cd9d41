// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"log/slog"
	"time"
)

// DefaultDepth is how deep below root candidates are looked for unless
// WithDepth says otherwise: root itself, root/x and root/x/y, which covers
// the layouts root/<name>/ and root/<name>/data/.
const DefaultDepth = 2

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
	// owned are the embedder's entry names (WithOwnedNames), valid ones
	// only; keep is its veto (WithKeep).
	owned []string
	keep  func(dataDir string) bool
	// creating is the data directory BeforeCreate claims (WithCreating).
	creating string
	// progress is WithProgress's hook, nil when unset.
	progress func(Progress)

	hooks hooks
}

// hooks are where tests act inside windows that are otherwise a matter of
// luck; every field is zero outside tests. They travel with the options
// (set by withHooks) rather than in package variables, so tests that use
// them run in parallel.
type hooks struct {
	// entered runs for each directory the walk opened (rel to the root),
	// before it is examined.
	entered func(rel string)
	// reclaim runs as Collect starts on an orphan the scan found.
	reclaim func(path string)
	// stateLocked runs once Collect holds a data directory's state lock,
	// before it reads the state.
	stateLocked func(path string)
	// locked runs once Collect holds an orphan's lease and state lock and
	// has decided again, before it checks the path again: where tests
	// swap the directory.
	locked func(path string)
	// emptying runs when Collect starts deleting an orphan's committed
	// rootfs-work from the trash.
	emptying func(path string)
	// lockTable replaces /proc/locks, the kernel's table of file locks.
	lockTable string
	// plainDirents and noAliveCache switch the getdents parser and the
	// live-PID cache off, for BenchmarkFastPaths.
	plainDirents, noAliveCache bool
}

// withHooks sets the test hooks.
func withHooks(h hooks) Option {
	return func(o *options) { o.hooks = h }
}

func newOptions(opts []Option) *options {
	o := &options{depth: DefaultDepth, now: time.Now}
	for _, opt := range opts {
		opt(o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.depth < 0 {
		o.depth = 0
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

func (o *options) policy() reclaimPolicy {
	return reclaimPolicy{Stopped: o.stopped, StoppedMinAge: o.stoppedAge, Veto: o.keep != nil}
}

// WithLogger sets the logger: one Info line per reclaimed directory, one
// Warn line per error, one Debug line per kept directory. The default
// discards everything; a nil logger is the default.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDepth sets how deep below root candidates are looked for (default
// DefaultDepth: root itself, root/x and root/x/y). Zero means root only; a
// negative depth is zero.
func WithDepth(n int) Option { return func(o *options) { o.depth = n } }

// WithStopped makes cleanly stopped (inactive) data directories at least
// minAge old reclaimable, with ReasonStoppedExpired. The age runs from the
// later of the state's created_at and the state file's modification time:
// a clean stop rewrites the file, so a VM stopped a moment ago is young
// whenever it was created. A created_at in the future is left out; a
// modification time in the future keeps the VM (its age is unknown). Off
// by default: a stopped VM may be started again.
func WithStopped(minAge time.Duration) Option {
	return func(o *options) { o.stopped = true; o.stoppedAge = minAge }
}

// WithBudget bounds the deletion work of Collect to d, counted from the
// start of the call: once it is spent, no further orphan is started and tree
// removals stop where they are. What did not fit stays reclaimable (an
// orphan, or an entry in the trash that the next Collect empties first) and
// Report.Deferred is set. Zero or negative means no budget.
func WithBudget(d time.Duration) Option { return func(o *options) { o.budget = d } }

// WithSizes makes Scan and Orphans measure the allocated bytes of what
// go-microvm owns in each candidate (a walk of rootfs-work, so it costs a
// tree walk per candidate). Without it Candidate.Bytes is -1.
func WithSizes() Option { return func(o *options) { o.sizes = true } }

// WithDryRun makes Collect decide and report without changing anything: it
// takes no lock that would create a file, empties no trash and reports
// would-be reclaims in Report.Reclaimed.
func WithDryRun() Option { return func(o *options) { o.dryRun = true } }

// WithOwnedNames names entries (files, directories, symlinks) that the
// embedder owns in a data directory and in its parents below root, so
// that Collect removes them with a VM it reclaims: for example an
// embedder's log file and marker beside root/<name>/data, or an image
// cache inside the data directory. Without it Collect touches only
// go-microvm's own entries.
//
// Each name is one path component; "", ".", "..", names with a slash,
// names starting with OwnPrefix and go-microvm's own names (rootfs-work,
// the state, lock, temporary and log files, which go with the VM anyway)
// are ignored. An entry that holds a state
// file is never owned: it is another VM's data directory, judged as one,
// and a parent that holds it is shared. The entries go before the
// state file, under the VM's run lease and state lock, fd-relative like
// rootfs-work: a symlink is unlinked and never followed, a directory is
// never left through a symlink or into another filesystem (a mount point
// is reported and left). In a parent, they go only when the parent holds
// nothing else than the VM's own branch, owned names and an idle
// collector lock: a parent shared with anything else is left whole. What
// cannot be removed (an error, a mount point, a spent budget) keeps the
// VM an orphan, with its state file, for the next Collect. The emptied
// data directory and its emptied parent are then removed as usual.
//
// A directory strictly below root, down to the depth, that holds only
// owned entries (at least one, beside at most an idle collector lock) and
// no data directory is the embedder's leftovers (a session killed before
// any state was saved): a candidate of its own, the outermost one only.
// Without WithKeep it is kept (ClassUnknown, ReasonNoVeto); with it, it is
// an orphan (ReasonLeftover) that Collect removes whole unless the veto
// keeps it.
func WithOwnedNames(names ...string) Option {
	return func(o *options) {
		for _, n := range names {
			if validOwnedName(n) {
				o.owned = append(o.owned, n)
			}
		}
	}
}

// WithKeep sets the embedder's veto: Collect asks keep(dataDir), with the
// data directory's absolute path, under its run lease and state lock just
// before it reclaims it, and keeps it when keep returns true, with
// ReasonEmbedderKeep. It is asked the same about an embedder's leftovers
// (see WithOwnedNames), with the leftover directory's path, under a flock
// on that directory: one that someone else flocks is kept, unasked. It lets an embedder protect its current run or a
// directory its own liveness check says is in use. keep may run
// concurrently for different directories. A keep that panics or calls
// runtime.Goexit keeps the directory, and is reported in Report.Errors;
// neither reaches the caller, and Collect returns as usual.
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

// WithProgress calls fn for every data directory classified and, in
// Collect, every orphan reclaimed, as it happens, so that a caller can
// show how far a long run has got. fn runs on the walking and reclaiming
// goroutines, possibly concurrently: it must be safe for that and quick,
// since the run waits for it. A nil fn is no hook.
func WithProgress(fn func(Progress)) Option { return func(o *options) { o.progress = fn } }
