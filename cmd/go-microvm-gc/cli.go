// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

const rootLong = `go-microvm-gc lists and reclaims the data directories that go-microvm VMs
leave behind when their runner or their embedder is killed.

Roots: every --root (repeatable), else the directories listed in
GO_MICROVM_GC_ROOT (separated like PATH), else the defaults that exist:
$GO_MICROVM_DATA_DIR and ~/.config/go-microvm (released go-microvm's
data directory). An embedder's directory is never a default root; see
"go-microvm-gc collect --help" for brood-box's.

Exit codes: 0 done; 1 some directories could not be reclaimed, a root
could not be read, or the output could not be written; 2 usage error;
75 another collector holds the root lock;
130 interrupted (SIGINT); 143 terminated (SIGTERM).`

// newRootCmd builds the command tree. Help, completion and the man page
// all come from these definitions.
func (a *app) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:                "go-microvm-gc",
		Short:              "List and reclaim the data directories of dead go-microvm VMs",
		Long:               rootLong,
		Version:            versionString(),
		Args:               cobra.NoArgs,
		SilenceErrors:      true,
		SilenceUsage:       true,
		DisableSuggestions: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(a.stderr)
			_ = cmd.Usage()
			return &exitCodeError{code: exitUsage}
		},
	}
	// Without cobra's -v shorthand: -v is --verbose in every subcommand.
	root.Flags().Bool("version", false, "print the version and exit")
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(a.newListCmd(), a.newCollectCmd(), a.newVersionCmd(), newManCmd(root))
	return root
}

// execute runs the command tree on args and returns the exit code.
func (a *app) execute(args []string) int {
	root := a.newRootCmd()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	cmd, err := root.ExecuteContextC(a.ctx)
	if cmd == nil {
		cmd = root
	}
	code := exitOK
	var ec *exitCodeError
	switch {
	case err == nil:
	case errors.As(err, &ec):
		code = ec.code
	default:
		eprintf(a.stderr, "%s: %v (see %s --help)\n", cmd.CommandPath(), err, cmd.CommandPath())
		code = exitUsage
	}
	if a.stdout.err != nil {
		eprintf(a.stderr, "go-microvm-gc: write output: %v\n", a.stdout.err)
		if _, sig := interrupted(a.ctx); !sig {
			code = exitError
		}
	}
	return code
}

// noArgs refuses positional arguments with a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

func (a *app) newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.stdout.println(versionString())
			return nil
		},
	}
}

// newManCmd writes the man pages: one per command into DIR, or the main
// page to stdout. Hidden: packagers use it.
func newManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man [DIR]",
		Short:  "Write the man pages (into DIR, or the main page to stdout)",
		Hidden: true,
		Args:   cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			header := &doc.GenManHeader{Title: "GO-MICROVM-GC", Section: "1", Source: "go-microvm"}
			root.DisableAutoGenTag = true
			var err error
			if len(args) == 0 {
				err = doc.GenMan(root, header, cmd.OutOrStdout())
			} else if err = os.MkdirAll(args[0], 0o755); err == nil {
				err = doc.GenManTree(root, header, args[0])
			}
			if err != nil {
				eprintf(cmd.ErrOrStderr(), "go-microvm-gc man: %v\n", err)
				return &exitCodeError{code: exitError}
			}
			return nil
		},
	}
}

// version is set at link time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// versionString is the --version line: the version (linked, else the
// module version `go install ...@version` recorded), then what the Go
// toolchain recorded about the build (module, VCS revision).
func versionString() string {
	info, _ := debug.ReadBuildInfo()
	return formatVersion(version, info)
}

// formatVersion renders the --version line from the linked version and the
// build info (nil when unavailable).
func formatVersion(linked string, info *debug.BuildInfo) string {
	v, parts := linked, []string{}
	if info != nil {
		if mv := info.Main.Version; mv != "" && mv != "(devel)" {
			if v == "dev" {
				v = mv
			}
			parts = append(parts, info.Main.Path+" "+mv)
		}
		vcs := map[string]string{}
		for _, s := range info.Settings {
			vcs[s.Key] = s.Value
		}
		if rev := vcs["vcs.revision"]; rev != "" {
			rev = rev[:min(len(rev), 12)]
			if vcs["vcs.modified"] == "true" {
				rev += "-dirty"
			}
			parts = append(parts, "revision "+rev)
		}
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("go-microvm-gc %s (%s)", v, strings.Join(parts, ", "))
}
