// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stacklok/go-microvm/internal/standin"
	"github.com/stacklok/go-microvm/runner"
)

// Exit codes; documented in the package doc and the README.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitBusy is EX_TEMPFAIL from sysexits.h: try again later.
	exitBusy = 75
)

// Environment variables that select a hidden mode of the executable. The
// demo re-executes itself in these modes, so that it needs nothing on the
// machine but this one binary.
const (
	// envStandin makes the executable the stand-in runner, whatever its name.
	envStandin = "GO_MICROVM_GC_STANDIN"
	// envDemoEmbedder makes it an embedder that claims the data directory
	// named by the value, clones part of a rootfs and blocks until killed.
	envDemoEmbedder = "GO_MICROVM_GC_DEMO_EMBEDDER"
	// envDemoIdle makes it an unrelated process that blocks until its
	// standard input closes.
	envDemoIdle = "GO_MICROVM_GC_DEMO_IDLE"
)

func main() {
	os.Exit(dispatch(os.Args))
}

// dispatch picks the role of this process: the stand-in runner (when started
// under the runner's name, as the demo does), one of the demo's helper
// processes, or the command itself.
func dispatch(args []string) int {
	if len(args) == 0 {
		args = []string{"go-microvm-gc"}
	}
	switch {
	case filepath.Base(args[0]) == runner.RunnerName, os.Getenv(envStandin) == "1":
		return standin.Main(args)
	case os.Getenv(envDemoEmbedder) != "":
		return demoEmbedderMain(os.Getenv(envDemoEmbedder), os.Stdout, os.Stderr)
	case os.Getenv(envDemoIdle) == "1":
		return demoIdleMain(os.Stdin)
	}
	// An interrupt cancels the work in progress; gc leaves whatever it was
	// reclaiming in a state the next run finishes.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args[1:], os.Stdout, os.Stderr)
}

const usageText = `go-microvm-gc lists and reclaims the data directories that go-microvm VMs
leave behind when their runner or their embedder is killed.

Usage:
  go-microvm-gc list    [--root DIR] [--json] [--sizes] [--stopped --older-than DUR]
  go-microvm-gc collect [--root DIR] [--dry-run] [--json] [--stopped --older-than DUR]
  go-microvm-gc demo    [--keep]
  go-microvm-gc --version

Run "go-microvm-gc COMMAND --help" for the flags of a command.

Exit codes: 0 done; 1 some directories could not be reclaimed; 2 usage
error; 75 another collector holds the root lock.
`

// run is the command with its arguments (without the program name).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "list":
		return runList(ctx, args[1:], stdout, stderr)
	case "collect":
		return runCollect(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "go-microvm-gc: unknown command %q\n\n%s", args[0], usageText)
	return exitUsage
}

// commonFlags are the flags shared by list and collect.
type commonFlags struct {
	root      string
	json      bool
	verbose   bool
	stopped   bool
	olderThan ageFlag
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.root, "root", "", "`DIR` that holds the data directories (default $XDG_CONFIG_HOME/go-microvm, else ~/.config/go-microvm)")
	fs.BoolVar(&c.json, "json", false, "print JSON (a stable contract) instead of a table")
	fs.BoolVar(&c.verbose, "verbose", false, "log debug details to stderr")
	fs.BoolVar(&c.stopped, "stopped", false, "treat cleanly stopped VMs older than --older-than as orphans")
	fs.Var(&c.olderThan, "older-than", "minimum age `DUR` of a stopped VM for --stopped, e.g. 72h or 7d")
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints its help to stdout when asked for it, to stderr otherwise.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: go-microvm-gc %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs. It returns done=true with the exit code
// when the command must not go on: help was asked for (0) or the arguments
// are wrong (2).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, done bool) {
	// Help goes to stdout, so that "go-microvm-gc list --help | less" works.
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK, true
		}
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "go-microvm-gc %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage, true
	}
	return exitOK, false
}

// checkStopped validates the --stopped/--older-than pair: reclaiming stopped
// VMs deletes what a user may still start again, so the age is explicit.
func (c *commonFlags) checkStopped(fs *flag.FlagSet, stderr io.Writer) bool {
	switch {
	case c.stopped && !c.olderThan.set:
		fmt.Fprintf(stderr, "go-microvm-gc %s: --stopped needs --older-than DUR\n", fs.Name())
		return false
	case c.olderThan.set && !c.stopped:
		fmt.Fprintf(stderr, "go-microvm-gc %s: --older-than needs --stopped\n", fs.Name())
		return false
	}
	return true
}

// Usage errors about the root.
var (
	errRootMissing = errors.New("root does not exist")
	errRootNotDir  = errors.New("root is not a directory")
)

// setup parses a subcommand's arguments into cf and resolves its root. done
// is true when the subcommand must return code at once: help was shown, or
// the flags or the root are wrong.
func (cf *commonFlags) setup(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (root string, exists bool, logger *slog.Logger, code int, done bool) {
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return "", false, nil, code, true
	}
	if !cf.checkStopped(fs, stderr) {
		return "", false, nil, exitUsage, true
	}
	root, exists, err := resolveRoot(cf.root)
	if err != nil {
		return "", false, nil, rootError(fs.Name(), err, stderr), true
	}
	return root, exists, newLogger(stderr, cf.verbose), exitOK, false
}

// resolveRoot returns the absolute root to work on. exists is false only
// for a missing default root, which means there is nothing to do; a missing
// or unusable --root is an error.
func resolveRoot(flagRoot string) (root string, exists bool, err error) {
	given := flagRoot != ""
	if given {
		root = flagRoot
	} else if root, err = defaultRoot(); err != nil {
		return "", false, err
	}
	if root, err = filepath.Abs(root); err != nil {
		return "", false, fmt.Errorf("resolve root: %w", err)
	}
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, os.ErrNotExist) && !given:
		return root, false, nil
	case errors.Is(err, os.ErrNotExist):
		return root, false, fmt.Errorf("%s: %w", root, errRootMissing)
	case err != nil:
		return root, false, fmt.Errorf("stat root: %w", err)
	case !fi.IsDir():
		return root, false, fmt.Errorf("%s: %w", root, errRootNotDir)
	}
	return root, true, nil
}

// defaultRoot is the released go-microvm default data directory.
func defaultRoot() (string, error) {
	if dir := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "go-microvm"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find default root: %w (use --root)", err)
	}
	return filepath.Join(home, ".config", "go-microvm"), nil
}

// rootError reports a resolveRoot failure and returns its exit code: a
// root that does not exist or is not a directory is a usage error, anything
// else a failure.
func rootError(cmd string, err error, stderr io.Writer) int {
	fmt.Fprintf(stderr, "go-microvm-gc %s: %v\n", cmd, err)
	if errors.Is(err, errRootMissing) || errors.Is(err, errRootNotDir) {
		return exitUsage
	}
	return exitError
}

// newLogger logs to stderr: warnings by default, everything with --verbose.
func newLogger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// ageFlag is a duration flag that also accepts whole days ("7d").
type ageFlag struct {
	d   time.Duration
	set bool
}

func (a *ageFlag) String() string {
	if a == nil || !a.set {
		return ""
	}
	return a.d.String()
}

func (a *ageFlag) Set(s string) error {
	d, err := parseAge(s)
	if err != nil {
		return err
	}
	a.d, a.set = d, true
	return nil
}

// parseAge parses a Go duration or a whole number of days such as "7d".
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("invalid age %q: want e.g. 36h or 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid age %q: want e.g. 36h or 7d", s)
	}
	return d, nil
}
