// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stacklok/go-microvm/gc"
)

// commonFlags are the flags shared by list and collect.
type commonFlags struct {
	roots        []string
	allowAnyRoot bool
	json         bool
	verbose      bool
	quiet        bool
	stopped      bool
	olderThan    ageValue
}

func (c *commonFlags) register(cmd *cobra.Command, quietUsage string) {
	f := cmd.Flags()
	f.StringArrayVar(&c.roots, "root", nil, "`DIR` that holds the data directories; repeat for several roots\n(default: $"+envRoot+", else the default roots that exist)")
	f.BoolVar(&c.json, "json", false, "print JSON (a stable contract) instead of a table")
	f.BoolVarP(&c.verbose, "verbose", "v", false, "log debug details to stderr")
	f.BoolVarP(&c.quiet, "quiet", "q", false, quietUsage)
	f.BoolVar(&c.stopped, "stopped", false, "also treat cleanly stopped VMs older than --older-than as orphans")
	f.Var(&c.olderThan, "older-than", "minimum age `AGE` of a stopped VM for --stopped: 36h, 7d, 2w, 1d12h")
	_ = cmd.MarkFlagDirname("root")
	_ = cmd.RegisterFlagCompletionFunc("older-than", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"1d", "7d", "2w", "30d"}, cobra.ShellCompDirectiveNoFileComp
	})
}

// check validates the --stopped/--older-than pair: reclaiming stopped VMs
// deletes what a user may still start again, so the age is explicit.
func (c *commonFlags) check() error {
	switch {
	case c.stopped && c.olderThan.text == "":
		return usagef("--stopped needs --older-than AGE")
	case c.olderThan.text != "" && !c.stopped:
		return usagef("--older-than needs --stopped")
	}
	return nil
}

// gcOptions turns the shared flags into gc options.
func (c *commonFlags) gcOptions() []gc.Option {
	var opts []gc.Option
	if c.stopped {
		opts = append(opts, gc.WithStopped(c.olderThan.d))
	}
	return opts
}

// reproduce is the part of a command line that selects what was looked
// at: the roots given by hand and the stopped policy, so that a hint
// names a command that does what it says.
func (c *commonFlags) reproduce() string {
	var parts []string
	for _, r := range c.roots {
		parts = append(parts, "--root", shellQuote(r))
	}
	if c.stopped {
		parts = append(parts, "--stopped", "--older-than", shellQuote(c.olderThan.text))
	}
	return strings.Join(parts, " ")
}

// shellSafe matches the words a POSIX shell reads as they are.
var shellSafe = regexp.MustCompile(`^[\w./:=@%+,-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ageValue is the --older-than flag: a Go duration with days and weeks;
// text is empty until it is set.
type ageValue struct {
	d    time.Duration
	text string
}

func (a *ageValue) String() string {
	if a == nil {
		return ""
	}
	return a.text
}

func (a *ageValue) Set(s string) error {
	d, err := parseAge(s)
	if err != nil {
		return err
	}
	a.d, a.text = d, s
	return nil
}

// Type names the value in help and completion.
func (a *ageValue) Type() string { return "age" }

// ageRE splits an age into whole weeks, days and a Go duration.
var ageRE = regexp.MustCompile(`^(?:(\d{1,5})w)?(?:(\d{1,5})d)?(.*)$`)

// parseAge parses an age as people type it: weeks and days ("2w", "7d"),
// optionally followed by a Go duration ("1d12h"), or a Go duration alone
// ("36h", "90m"). Negative ages are refused.
func parseAge(s string) (time.Duration, error) {
	m := ageRE.FindStringSubmatch(s)
	w, _ := strconv.Atoi(m[1])
	d, _ := strconv.Atoi(m[2])
	var rest time.Duration
	var err error
	if m[3] != "" {
		rest, err = time.ParseDuration(m[3])
	}
	// 100,000 days keep the sum below time.Duration's 292 years.
	if s == "" || err != nil || rest < 0 || 7*w+d > 100_000 {
		return 0, fmt.Errorf("invalid age %q: want e.g. 36h, 7d, 2w or 1d12h", s)
	}
	return time.Duration(7*w+d)*24*time.Hour + rest, nil
}
