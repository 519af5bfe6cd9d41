// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stacklok/go-microvm/gc"
)

const collectLong = `Reclaim the orphans under the roots: data directories whose VM is gone.
Live, busy, unknown and unreadable directories are kept; cleanly stopped
VMs are kept unless --stopped --older-than AGE says otherwise, and then, on
a terminal, collect asks before deleting them (-f skips the question).

collect never deletes a live VM's files, never follows a symbolic link and
never crosses a mount point. It refuses / and any user's home directory
(or a directory above one) as a root unless --allow-any-root is given.

An embedder's directory is not a default root: whether its sessions are
still in use is the embedder's to judge. To sweep brood-box's, name it and
brood-box's entries:

  go-microvm-gc collect --root ~/.config/broodbox/vms --owned .bbox-sentinel \
      --owned broodbox.log --owned data --owned cache --owned firmware.ref.json

There collect reclaims the VMs whose runner is gone, with brood-box's files
in and beside their data directory, and keeps live, busy, unknown,
unreadable and (without --stopped) stopped ones. It never removes a session
left without a data directory (a bbox killed before its VM saved state):
with no veto of brood-box's to ask, such leftovers are listed as unknown
(no-veto) and kept. It cannot read brood-box's sentinel: a VM whose runner
exited while its bbox still runs (and may read its rootfs) is reclaimed.
Run it there only when no bbox runs; bbox's own sweep judges both.`

// collectFlags are the flags of collect.
type collectFlags struct {
	commonFlags
	dryRun      bool
	force       bool
	metricsFile string
	owned       []string
}

func (a *app) newCollectCmd() *cobra.Command {
	var cf collectFlags
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Reclaim the data directories of dead VMs",
		Long:  collectLong,
		Example: `  go-microvm-gc collect -n
  go-microvm-gc collect --stopped --older-than 2w -f
  go-microvm-gc collect -q --metrics-file /var/lib/node_exporter/textfile/go-microvm-gc.prom`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return a.runCollect(&cf) },
	}
	cf.register(cmd, "print nothing but errors: no progress, no table")
	f := cmd.Flags()
	f.BoolVarP(&cf.dryRun, "dry-run", "n", false, "decide and report what would be freed, but change nothing")
	f.BoolVarP(&cf.force, "force", "f", false, "do not ask before reclaiming stopped VMs")
	f.BoolVar(&cf.allowAnyRoot, "allow-any-root", false, "collect even in /, a home directory or a directory above one")
	f.StringVar(&cf.metricsFile, "metrics-file", "", "write Prometheus text-format metrics to `FILE` (atomically; a regular file or a new one)")
	_ = cmd.MarkFlagFilename("metrics-file", "prom")
	f.StringArrayVar(&cf.owned, "owned", nil, "entry `NAME` the embedder owns in a data directory and its parents, removed with the VM (repeatable); a directory holding only such names is kept: the command has no veto")
	return cmd
}

// rootResult is the outcome of collect in one root: busy when another
// collector held the root lock, fatal when the root could not be opened or
// locked; lockErr and trash are a dry run's.
type rootResult struct {
	root     string
	rep      *gc.Report
	busy     bool
	fatal    error
	lockErr  error
	trash    []pendingTrash
	duration time.Duration
}

// check validates the flags of collect.
func (cf *collectFlags) check() error {
	if err := cf.commonFlags.check(); err != nil {
		return err
	}
	if cf.dryRun && cf.metricsFile != "" {
		return usagef("--metrics-file records what a collection did; a dry run does nothing")
	}
	if err := checkMetricsFile(cf.metricsFile); cf.metricsFile != "" && err != nil {
		return err
	}
	for _, n := range cf.owned {
		// gc.WithOwnedNames ignores these: a flag that does nothing is a
		// mistake to say.
		if n == "" || n == "." || n == ".." || strings.ContainsRune(n, '/') || strings.HasPrefix(n, gc.OwnPrefix) {
			return usagef("--owned %s: want the name of one entry, not a path or a name of the collector's", strconv.Quote(n))
		}
	}
	return nil
}

// runCollect is `go-microvm-gc collect`.
func (a *app) runCollect(cf *collectFlags) error {
	if err := cf.check(); err != nil {
		return err
	}
	rs, err := collectRoots(cf)
	if err != nil {
		return err
	}
	if len(rs.missing) > 0 {
		// No root at all is not a failure: there is nothing to collect.
		a.reportCollect(cf, rs, nil, false)
		return nil
	}
	opts, prog, err := a.collectOptions(cf, rs.dirs)
	if err != nil {
		return err
	}
	var results []rootResult
	for _, root := range rs.dirs {
		if a.ctx.Err() != nil {
			break
		}
		results = append(results, a.collectRoot(root, opts, cf.dryRun))
	}
	prog.stop()

	code, sig := interrupted(a.ctx)
	if !sig {
		code = collectCode(results)
	}
	if err := a.recordMetrics(cf, results, sig); err != nil && !sig {
		code = exitError
	}
	a.reportCollect(cf, rs, results, sig)
	if code != exitOK {
		return &exitCodeError{code: code}
	}
	return nil
}

// collectRoots resolves the roots of collect, and refuses one that holds
// a user's files (/, a home directory) unless --allow-any-root is given.
func collectRoots(cf *collectFlags) (roots, error) {
	rs, err := resolveRoots(cf.roots)
	if err != nil || cf.allowAnyRoot {
		return rs, err
	}
	for _, r := range rs.dirs {
		if err := checkRootSafe(r); err != nil {
			return roots{}, err
		}
	}
	return rs, nil
}

// collectOptions returns the options of the collection and the progress
// line it drives (nil when none; stop it once done). With --stopped on a
// terminal and no -f, it asks first, and leaves the stopped VMs out when
// the answer is no.
func (a *app) collectOptions(cf *collectFlags, dirs []string) ([]gc.Option, *progress, error) {
	base := []gc.Option{gc.WithLogger(newLogger(a.stderr, cf.verbose))}
	var prog *progress
	if a.stderrTTY && !cf.quiet && !cf.dryRun {
		prog = startProgress(a.stderr, a.progressAfter)
		base = append(base, gc.WithProgress(prog.observe))
	}
	if cf.dryRun {
		base = append(base, gc.WithDryRun(), gc.WithSizes())
	}
	if len(cf.owned) > 0 {
		base = append(base, gc.WithOwnedNames(cf.owned...))
	}
	opts := append(cf.gcOptions(), base...)
	if !cf.stopped || cf.force || cf.dryRun || !a.stdinTTY || !a.stderrTTY {
		// Nothing to ask, or nobody to ask.
		return opts, prog, nil
	}
	// Without the progress hook: this look-ahead is not the collection.
	ok, err := a.confirmStopped(dirs, cf.gcOptions())
	if err != nil {
		// Only an interrupt ends the question early.
		prog.stop()
		a.errorf("collect", "interrupted; nothing done")
		code, _ := interrupted(a.ctx)
		return nil, nil, &exitCodeError{code: max(code, exitError)}
	}
	if !ok {
		eprintf(a.stderr, "Keeping the stopped VMs; collecting orphans only.\n")
		return base, prog, nil
	}
	return opts, prog, nil
}

// collectRoot collects in one root and returns what happened there.
func (a *app) collectRoot(root string, opts []gc.Option, dryRun bool) rootResult {
	r := rootResult{root: root}
	if dryRun {
		r.lockErr = lockAccess(root)
	}
	start := time.Now()
	rep, err := gc.CollectContext(a.ctx, root, opts...)
	r.duration = time.Since(start)
	switch {
	case errors.Is(err, gc.ErrBusy):
		r.busy = true
	case err != nil && a.ctx.Err() != nil && rep != nil:
		// Interrupted: the report says what finished.
	case err != nil:
		r.fatal = err
	}
	r.rep = rep
	if dryRun && rep != nil {
		if t, ok := trashIn(a.ctx, root, true); ok {
			r.trash = []pendingTrash{t}
		}
	}
	return r
}

// recordMetrics writes the --metrics-file, if asked; a failure is printed
// and returned.
func (a *app) recordMetrics(cf *collectFlags, results []rootResult, sig bool) error {
	if cf.metricsFile == "" {
		return nil
	}
	err := writeMetrics(cf.metricsFile, results, sig, time.Now())
	if err != nil {
		a.errorf("collect", "%s", quote(err.Error()))
	}
	return err
}

// reportCollect prints what the collection did as the flags ask, and on
// stderr the roots it could not collect in (unless --json holds them) and
// an interrupt.
func (a *app) reportCollect(cf *collectFlags, rs roots, results []rootResult, sig bool) {
	for _, r := range results {
		switch {
		case r.busy && !cf.json:
			a.errorf("collect", "%s: another collector holds the root lock; nothing done there, try again later", quote(r.root))
		case r.fatal != nil && !cf.json:
			a.errorf("collect", "%s", quote(r.fatal.Error()))
		}
	}
	if sig {
		a.errorf("collect", "interrupted; what finished is reported, the rest is left for the next run")
	}
	switch {
	case cf.json:
		writeJSON(a.stdout, newCollectJSON(rs, results, cf.dryRun, sig))
	case cf.quiet:
		for _, r := range results {
			for _, e := range r.report().Errors {
				a.errorf("collect", "%s: %s", quote(e.Path), quote(opError(e)))
			}
		}
	case len(rs.missing) > 0:
		a.stdout.println(missingMessage(rs.missing, "collect"))
	default:
		writeCollectHuman(a.stdout, results, cf.dryRun, sig)
	}
}

// collectCode is the exit code of a run that was not interrupted: 1 when
// anything failed, else 75 when a root was busy, else 0.
func collectCode(results []rootResult) int {
	busy := false
	for _, r := range results {
		if r.fatal != nil || len(r.report().Errors) > 0 {
			return exitError
		}
		busy = busy || r.busy
	}
	if busy {
		return exitBusy
	}
	return exitOK
}

// report is r's report, an empty one when there is none.
func (r rootResult) report() *gc.Report {
	if r.rep == nil {
		return &gc.Report{}
	}
	return r.rep
}

// confirmStopped asks, when there are stopped VMs to reclaim, whether to
// delete them: they may hold a user's work. Yes is "y" or "yes" on stdin;
// an interrupt while waiting ends the wait with the context's error.
func (a *app) confirmStopped(roots []string, opts []gc.Option) (bool, error) {
	var stopped []string
	for _, root := range roots {
		// Unreadable directories are not stopped VMs: their errors can wait.
		orphans, _ := gc.OrphansContext(a.ctx, root, opts...)
		if a.ctx.Err() != nil {
			return false, a.ctx.Err()
		}
		for _, o := range orphans {
			if o.Reason == gc.ReasonStoppedExpired {
				stopped = append(stopped, o.Path)
			}
		}
	}
	if len(stopped) == 0 {
		return true, nil
	}
	sort.Strings(stopped)
	eprintf(a.stderr, "These stopped VMs may hold work and would be deleted:\n")
	for _, p := range stopped {
		eprintf(a.stderr, "  %s\n", quote(p))
	}
	eprintf(a.stderr, "Delete %s? [y/N] ", plural(len(stopped), "stopped VM", "stopped VMs"))
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(a.stdin).ReadString('\n')
		answer <- strings.ToLower(strings.TrimSpace(line))
	}()
	select {
	case line := <-answer:
		return line == "y" || line == "yes", nil
	case <-a.ctx.Done():
		eprintf(a.stderr, "\n")
		return false, a.ctx.Err()
	}
}
