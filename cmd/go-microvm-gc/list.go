// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"github.com/stacklok/go-microvm/gc"
)

const listSynopsis = "list [--root DIR] [--json] [--sizes] [--stopped --older-than DUR]"

// runList is `go-microvm-gc list`: every candidate under the root with its
// class and reason. It changes nothing.
func runList(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cf commonFlags
	var sizes bool
	fs := newFlagSet("list", listSynopsis, stderr)
	cf.register(fs)
	fs.BoolVar(&sizes, "sizes", false, "measure the allocated bytes of what go-microvm owns in each data directory")
	root, exists, logger, code, done := cf.setup(fs, args, stdout, stderr)
	if done {
		return code
	}

	var cands []gc.Candidate
	if exists {
		opts := cf.gcOptions(logger)
		if sizes {
			opts = append(opts, gc.WithSizes())
		}
		var err error
		cands, err = gc.ScanContext(ctx, root, opts...)
		if err != nil {
			fmt.Fprintf(stderr, "go-microvm-gc list: %v\n", err)
			return exitError
		}
	} else {
		logger.Info("default root does not exist; nothing to list", slog.String("root", root))
	}
	sortCandidates(cands)

	if cf.json {
		if err := writeJSON(stdout, newListJSON(root, cands, sizes)); err != nil {
			fmt.Fprintf(stderr, "go-microvm-gc list: %v\n", err)
			return exitError
		}
		return exitOK
	}
	if !exists {
		fmt.Fprintf(stdout, "Root: %s does not exist; nothing to list.\n", root)
		return exitOK
	}
	writeListTable(stdout, root, cands, sizes)
	return exitOK
}

// gcOptions turns the shared flags into gc options.
func (c *commonFlags) gcOptions(logger *slog.Logger) []gc.Option {
	opts := []gc.Option{gc.WithLogger(logger)}
	if c.stopped {
		opts = append(opts, gc.WithStopped(c.olderThan.d))
	}
	return opts
}

func sortCandidates(cands []gc.Candidate) {
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Path < cands[j].Path })
}
