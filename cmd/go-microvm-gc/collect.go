// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/stacklok/go-microvm/gc"
)

const collectLong = `Reclaim the orphans under the roots: data directories whose VM is gone.
Live, busy, unknown and unreadable directories are kept; cleanly stopped
VMs are kept unless --stopped --older-than AGE says otherwise, and then, on
a terminal, collect asks before deleting them (-f skips the question).

collect never deletes a live VM's files, never follows a symbolic link and
never crosses a mount point. It refuses / and the home directory (or a
directory above it) as a root unless --allow-any-root is given.`

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
	f.BoolVar(&cf.allowAnyRoot, "allow-any-root", false, "collect even in / or the home directory")
	f.StringVar(&cf.metricsFile, "metrics-file", "", "write Prometheus text-format metrics to `FILE` (atomically)")
	_ = cmd.MarkFlagFilename("metrics-file", "prom")
	f.StringArrayVar(&cf.owned, "owned", nil, "entry `NAME` the embedder owns in a data directory and its parents, removed with the VM (repeatable)")
	return cmd
}

// rootResult is the outcome of collect in one root.
type rootResult struct {
	root string
	rep  *gc.Report
	// busy: another collector held the root lock; nothing was done.
	busy bool
	// fatal is a failure to open or lock the root.
	fatal error
	// lockErr (dry run) says why this user could not take the root lock.
	lockErr error
	// trash is the pending trash a dry run found.
	trash    []pendingTrash
	duration time.Duration
}

// runCollect is `go-microvm-gc collect`.
func (a *app) runCollect(cf *collectFlags) error {
	if err := cf.check(); err != nil {
		return err
	}
	if cf.dryRun && cf.metricsFile != "" {
		return usagef("--metrics-file records what a collection did; a dry run does nothing")
	}
	rs, err := resolveRoots(cf.roots)
	if err != nil {
		return err
	}
	if !cf.allowAnyRoot {
		for _, r := range rs.dirs {
			if err := checkRootSafe(r); err != nil {
				return err
			}
		}
	}
	if len(rs.missing) > 0 {
		if cf.json {
			writeJSON(a.stdout, newCollectJSON(rs, nil, cf.dryRun, false))
		} else if !cf.quiet {
			a.stdout.println(missingMessage(rs.missing, "collect"))
		}
		return nil
	}

	logger := newLogger(a.stderr, cf.verbose)
	base := []gc.Option{gc.WithLogger(logger)}
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
	if cf.stopped && !cf.force && !cf.dryRun && a.stdinTTY && a.stderrTTY {
		// Without the progress hook: this look-ahead is not the
		// collection.
		ok, err := a.confirmStopped(rs.dirs, cf.gcOptions())
		if err != nil {
			prog.stop()
			return a.collectInterrupted(err)
		}
		if !ok {
			eprintf(a.stderr, "Keeping the stopped VMs; collecting orphans only.\n")
			opts = base
		}
	}

	var results []rootResult
	for _, root := range rs.dirs {
		if a.ctx.Err() != nil {
			break
		}
		r := rootResult{root: root}
		if cf.dryRun {
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
		if cf.dryRun && rep != nil {
			r.trash = findTrash(a.ctx, root, reportDirs(rep), true)
		}
		results = append(results, r)
	}
	prog.stop()

	code, sig := interrupted(a.ctx)
	if !sig {
		code = collectCode(results)
	}
	if cf.metricsFile != "" {
		if err := writeMetrics(cf.metricsFile, results, sig, time.Now()); err != nil {
			a.errorf("collect", "%s", quote(err.Error()))
			if !sig {
				code = exitError
			}
		}
	}
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
		// Quiet prints nothing but errors: on stderr, one line each.
		for _, r := range results {
			if r.rep == nil {
				continue
			}
			for _, e := range r.rep.Errors {
				a.errorf("collect", "%s: %s", quote(e.Path), quote(opError(e)))
			}
		}
	default:
		writeCollectHuman(a.stdout, results, cf.dryRun, sig)
	}
	if code != exitOK {
		return &exitCodeError{code: code}
	}
	return nil
}

// collectCode is the exit code of a run that was not interrupted: 1 when
// anything failed, else 75 when a root was busy, else 0.
func collectCode(results []rootResult) int {
	busy := false
	for _, r := range results {
		if r.fatal != nil || (r.rep != nil && len(r.rep.Errors) > 0) {
			return exitError
		}
		busy = busy || r.busy
	}
	if busy {
		return exitBusy
	}
	return exitOK
}

// collectInterrupted ends a run interrupted before it changed anything.
func (a *app) collectInterrupted(err error) error {
	if code, ok := interrupted(a.ctx); ok {
		a.errorf("collect", "interrupted; nothing done")
		return &exitCodeError{code: code}
	}
	a.errorf("collect", "%v", err)
	return &exitCodeError{code: exitError}
}

// confirmStopped asks before stopped VMs are reclaimed: they may hold a
// user's work. It asks only when there are some.
func (a *app) confirmStopped(roots []string, opts []gc.Option) (bool, error) {
	var stopped []string
	for _, root := range roots {
		orphans, err := gc.OrphansContext(a.ctx, root, opts...)
		if a.ctx.Err() != nil {
			return false, a.ctx.Err()
		}
		if err != nil && len(orphans) == 0 {
			continue
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
	return a.confirm(fmt.Sprintf("Delete %s?", plural(len(stopped), "stopped VM", "stopped VMs")))
}

// reportDirs lists every data directory a report names.
func reportDirs(rep *gc.Report) []string {
	var dirs []string
	for _, o := range rep.Reclaimed {
		dirs = append(dirs, o.Path)
	}
	for _, c := range rep.Kept {
		dirs = append(dirs, c.Path)
	}
	return dirs
}
