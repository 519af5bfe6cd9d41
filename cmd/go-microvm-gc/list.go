// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"github.com/stacklok/go-microvm/gc"
)

const listLong = `List every data directory under the roots with its class and reason,
and the collector trash a cut-short collection left behind. It changes
nothing.

The table and -q are sorted by path. --json and --json-lines write each
data directory as soon as it is decided, in scan order (not sorted), and
keep only counts, so their memory stays flat at any number of directories.
A path that is not valid UTF-8 also gets "path_bytes", its exact bytes in
base64, since a JSON string cannot hold them.`

// listFlags are the flags of list.
type listFlags struct {
	commonFlags
	sizes     bool
	jsonLines bool
}

func (a *app) newListCmd() *cobra.Command {
	var lf listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List data directories with their class and reason",
		Long:  listLong,
		Example: `  go-microvm-gc list --sizes
  go-microvm-gc list --stopped --older-than 7d --json`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return a.runList(&lf) },
	}
	lf.register(cmd, "print only the paths of the data directories, one a line")
	cmd.Flags().BoolVar(&lf.sizes, "sizes", false, "measure the allocated bytes of what go-microvm owns in each data directory")
	cmd.Flags().BoolVar(&lf.jsonLines, "json-lines", false, "print JSON Lines, one object per data directory as it is decided\n(in scan order, not sorted; memory stays flat at any number of directories)")
	return cmd
}

// rootListing is what list found under one root.
type rootListing struct {
	root  string
	cands []gc.Candidate
	trash []pendingTrash
	// scanErr is what kept the scan from walking the root (or part of it),
	// so that an empty listing is not shown as an empty root.
	scanErr error
}

// runList is `go-microvm-gc list`.
func (a *app) runList(lf *listFlags) error {
	if err := lf.check(); err != nil {
		return err
	}
	if lf.jsonLines && (lf.json || lf.quiet) {
		return usagef("--json-lines excludes --json and --quiet")
	}
	rs, err := resolveRoots(lf.roots)
	if err != nil {
		return err
	}
	logger := newLogger(a.stderr, lf.verbose)
	opts := append(lf.gcOptions(), gc.WithLogger(logger))
	if lf.sizes {
		opts = append(opts, gc.WithSizes())
	}
	switch {
	case lf.jsonLines:
		return a.streamList(lf, rs, opts, newLinesSink(a.stdout))
	case lf.json:
		return a.streamList(lf, rs, opts, newDocSink(a.stdout, firstRoot(rs)))
	}
	// The table and -q hold the listing: they are sorted by path, for a
	// person to read, and the table needs every row for its widths.
	listings, scanErr := a.scanRoots(rs.dirs, opts, lf.sizes)
	code, sig := interrupted(a.ctx)
	if sig {
		eprintf(a.stderr, "go-microvm-gc list: interrupted\n")
	} else if scanErr != nil {
		code = exitError
	}

	a.printListings(lf, rs, listings)
	if code != exitOK {
		return &exitCodeError{code: code}
	}
	return nil
}

// printListings prints the listings as the table, or the paths alone
// with -q; or says that no root exists.
func (a *app) printListings(lf *listFlags, rs roots, listings []rootListing) {
	switch {
	case len(rs.missing) > 0:
		a.stdout.println(missingMessage(rs.missing, "list"))
	case lf.quiet:
		for _, l := range listings {
			for _, c := range l.cands {
				a.stdout.println(quote(c.Path))
			}
		}
	default:
		writeListTables(a.stdout, listings, lf.sizes, lf.reproduce())
	}
}

// scanRoots scans each root in dirs, until an interrupt, and returns what
// it found, sorted by path, with the last error of a root it could not
// (wholly) walk; each such error is printed as it comes.
func (a *app) scanRoots(dirs []string, opts []gc.Option, sizes bool) ([]rootListing, error) {
	var listings []rootListing
	var scanErr error
	for _, root := range dirs {
		cands, err := gc.ScanContext(a.ctx, root, opts...)
		if a.ctx.Err() != nil {
			break
		}
		if err != nil {
			// Scan returns what it found together with the directories
			// it could not walk; report both.
			a.errorf("list", "%s", quote(err.Error()))
			scanErr = err
		}
		sortCandidates(cands)
		listings = append(listings, rootListing{root: root, cands: cands, trash: findTrash(a.ctx, root, sizes), scanErr: err})
	}
	return listings, scanErr
}

// errorf prints one error line of subcommand cmd on stderr.
func (a *app) errorf(cmd, format string, args ...any) {
	eprintf(a.stderr, "go-microvm-gc %s: %s\n", cmd, fmt.Sprintf(format, args...))
}

func sortCandidates(cands []gc.Candidate) {
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Path < cands[j].Path })
}
