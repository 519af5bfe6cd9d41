// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"github.com/stacklok/go-microvm/gc"
)

const collectSynopsis = "collect [--root DIR] [--dry-run] [--json] [--stopped --older-than DUR]"

// runCollect is `go-microvm-gc collect`: reclaim the orphans under the root
// and report what was reclaimed, kept and failed.
func runCollect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	var dryRun bool
	fs := newFlagSet("collect", collectSynopsis, stderr)
	cf.register(fs)
	fs.BoolVar(&dryRun, "dry-run", false, "decide and report, but change nothing")
	root, exists, logger, code, done := cf.setup(fs, args, stdout, stderr)
	if done {
		return code
	}
	if !exists {
		logger.Info("default root does not exist; nothing to collect", slog.String("root", root))
		if cf.json {
			return jsonResult(stdout, stderr, newCollectJSON(root, nil, false, dryRun), exitOK)
		}
		fmt.Fprintf(stdout, "Root: %s does not exist; nothing to collect.\n", root)
		return exitOK
	}

	opts := cf.gcOptions(logger)
	if dryRun {
		opts = append(opts, gc.WithDryRun(), gc.WithSizes())
	}
	rep, err := gc.CollectContext(ctx, root, opts...)
	switch {
	case errors.Is(err, gc.ErrBusy):
		if cf.json {
			return jsonResult(stdout, stderr, newCollectJSON(root, nil, true, dryRun), exitBusy)
		}
		fmt.Fprintf(stderr, "go-microvm-gc collect: %s: %v; nothing done, try again later\n", root, err)
		return exitBusy
	case err != nil && rep == nil:
		if cf.json {
			doc := newCollectJSON(root, nil, false, dryRun)
			doc.Errors = append(doc.Errors, errorJSON{Path: root, Error: err.Error()})
			return jsonResult(stdout, stderr, doc, exitError)
		}
		fmt.Fprintf(stderr, "go-microvm-gc collect: %v\n", err)
		return exitError
	}

	sort.SliceStable(rep.Reclaimed, func(i, j int) bool { return rep.Reclaimed[i].Path < rep.Reclaimed[j].Path })
	sortCandidates(rep.Kept)
	code = exitOK
	if err != nil || len(rep.Errors) > 0 {
		code = exitError
	}
	if cf.json {
		doc := newCollectJSON(root, rep, false, dryRun)
		if err != nil {
			doc.Errors = append(doc.Errors, errorJSON{Path: root, Error: err.Error()})
		}
		return jsonResult(stdout, stderr, doc, code)
	}
	writeCollectHuman(stdout, root, rep)
	if err != nil {
		fmt.Fprintf(stderr, "go-microvm-gc collect: %v\n", err)
	}
	return code
}

// jsonResult writes doc and returns code, or exitError when writing failed.
func jsonResult(stdout, stderr io.Writer, doc any, code int) int {
	if err := writeJSON(stdout, doc); err != nil {
		fmt.Fprintf(stderr, "go-microvm-gc: %v\n", err)
		return exitError
	}
	return code
}
