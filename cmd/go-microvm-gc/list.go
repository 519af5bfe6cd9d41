// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"

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
	opts := append(lf.gcOptions(), gc.WithLogger(newLogger(a.stderr, lf.verbose)))
	if lf.sizes {
		opts = append(opts, gc.WithSizes())
	}
	var sink listSink = &tableSink{w: a.stdout, lf: lf, dirs: map[string][]*dirJSON{}, trashes: map[string]*trashJSON{}}
	switch {
	case lf.jsonLines:
		sink = newLinesSink(a.stdout)
	case lf.json:
		sink = newDocSink(a.stdout, firstRoot(rs))
	}
	return a.streamList(lf, rs, opts, sink)
}

// errorf prints one error line of subcommand cmd on stderr.
func (a *app) errorf(cmd, format string, args ...any) {
	eprintf(a.stderr, "go-microvm-gc %s: %s\n", cmd, fmt.Sprintf(format, args...))
}
