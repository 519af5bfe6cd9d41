// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gofrs/flock"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// TestMain makes the test binary the command: the scripts and the tests of
// the real process run it as go-microvm-gc, signals and all.
func TestMain(m *testing.M) {
	// Process tests start the command through testproc; scripts run it
	// through testscript, which finds it by its name.
	testproc.Register("go-microvm-gc", func([]string) int { return mainCode() })
	if testproc.IsHelper() {
		testproc.Main(m)
	}
	testscript.Main(m, map[string]func(){
		"go-microvm-gc": func() { os.Exit(mainCode()) },
	})
}

func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// The default root must never be the real one of whoever runs
			// the tests.
			env.Setenv(envDataDir, "")
			// This user's root lock, for scripts to check it is gone.
			env.Setenv("LOCK", gc.LockName())
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "mountable" {
				return canMount(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"lease":    cmdLease,
			"rootlock": cmdRootLock,
			"mount":    cmdMount,
			"cmpjson":  cmdCmpJSON,
			"exitcode": cmdExitCode,
		},
	})
}

// cmdLease holds the run lease of a data directory until the script ends,
// which makes it live to the collector.
func cmdLease(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: lease DIR")
	}
	l, err := state.TryLease(ts.MkAbs(args[0]))
	ts.Check(err)
	ts.Defer(func() { l.Close() })
}

// cmdRootLock holds the root lock of a root until the script ends, as a
// concurrent collector would.
func cmdRootLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: rootlock ROOT")
	}
	fl := flock.New(filepath.Join(ts.MkAbs(args[0]), gc.LockName()))
	ok, err := fl.TryLock()
	ts.Check(err)
	if !ok {
		ts.Fatalf("root lock of %s is already held", args[0])
	}
	ts.Defer(func() { fl.Unlock() })
}

// cmdExitCode runs a program like exec and checks its exact exit code;
// stdout and stderr are kept for the next commands.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode CODE PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	got := 0
	var ee *exec.ExitError
	if err := ts.Exec(args[1], args[2:]...); errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("run %s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// cmdCmpJSON compares the JSON in a file (or stdout) with the expected
// JSON after substituting environment variables in it. Values that vary
// from run to run are masked: "age_seconds" must be a number >= 0, a
// non-null "bytes" a number > 0 (written as "<number>" in the
// expectation), and a non-empty "detail" is "<text>". The entries of a
// "dirs" or "trash" array are compared sorted by path: `list --json`
// writes them in scan order, which is not part of the contract.
func cmdCmpJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cmpjson FILE|stdout WANT")
	}
	got := ts.ReadFile(args[0])
	want := os.Expand(ts.ReadFile(args[1]), ts.Getenv)
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		ts.Fatalf("%s is not JSON: %v\n%s", args[0], err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		ts.Fatalf("%s is not JSON: %v", args[1], err)
	}
	g = maskJSON(ts, "", g)
	if !reflect.DeepEqual(g, w) {
		gb, _ := json.MarshalIndent(g, "", "  ")
		wb, _ := json.MarshalIndent(w, "", "  ")
		ts.Fatalf("JSON differs\ngot (masked):\n%s\nwant:\n%s", gb, wb)
	}
}

func maskJSON(ts *testscript.TestScript, key string, v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = maskJSON(ts, k, e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = maskJSON(ts, "", e)
		}
		if key == "dirs" || key == "trash" {
			slices.SortStableFunc(v, func(a, b any) int { return cmp.Compare(pathOf(a), pathOf(b)) })
		}
		return v
	case float64:
		switch {
		case key == "age_seconds" && v >= 0,
			(key == "bytes" || key == "bytes_freed" || key == "would_free_bytes") && v > 0:
			return "<number>"
		}
	case string:
		if key == "detail" && v != "" {
			return "<text>"
		}
	}
	return v
}

// pathOf is the "path" of a decoded JSON object, "" when it has none.
func pathOf(v any) string {
	m, _ := v.(map[string]any)
	p, _ := m["path"].(string)
	return p
}

// TestParseAge covers the --older-than syntax.
func TestParseAge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"36h", "36h0m0s", true},
		{"7d", "168h0m0s", true},
		{"0d", "0s", true},
		{"90m", "1h30m0s", true},
		{"2w", "336h0m0s", true},
		{"1d12h", "36h0m0s", true},
		{"1w2d3h30m", "219h30m0s", true},
		{"", "", false},
		{"7x", "", false},
		{"1d-2h", "", false},
		{"-1h", "", false},
		{"d", "", false},
		{"1.5d", "", false},
		{"week", "", false},
	} {
		d, err := parseAge(tc.in)
		if (err == nil) != tc.ok || (tc.ok && d.String() != tc.want) {
			t.Errorf("parseAge(%q) = %v, %v; want %s, ok=%v", tc.in, d, err, tc.want, tc.ok)
		}
	}
}

// TestCollectSummary pins the closing line of `collect`.
func TestCollectSummary(t *testing.T) {
	t.Parallel()
	kept := func(classes ...gc.Class) []gc.Candidate {
		var cs []gc.Candidate
		for _, c := range classes {
			cs = append(cs, gc.Candidate{Class: c})
		}
		return cs
	}
	orphans := func(n int, bytes int64) []gc.Orphan {
		out := make([]gc.Orphan, n)
		for i := range out {
			out[i].Bytes = bytes
		}
		return out
	}
	for _, tc := range []struct {
		rep  gc.Report
		want string
	}{
		{
			gc.Report{Reclaimed: orphans(3, 700_000_000), BytesFreed: 2_100_000_000,
				Kept: kept(gc.ClassLive, gc.ClassStopped, gc.ClassLive, gc.ClassLive, gc.ClassLive)},
			"Reclaimed 3 data directories, 2.1 GB freed; kept 5 (4 live, 1 stopped)",
		},
		{gc.Report{}, "Reclaimed 0 data directories, 0 B freed; kept 0"},
		{
			gc.Report{Reclaimed: orphans(1, 0), Kept: kept(gc.ClassUnreadable),
				Errors: []*fs.PathError{{Op: "open", Path: "/x", Err: os.ErrPermission}}},
			"Reclaimed 1 data directory, 0 B freed; kept 1 (1 unreadable); 1 error",
		},
		{
			gc.Report{DryRun: true, Reclaimed: orphans(2, 1_000_000), Kept: kept(gc.ClassBusy)},
			"Dry run: would reclaim 2 data directories, 2.0 MB in all; would keep 1 (1 busy)",
		},
	} {
		if got := collectSummary(&tc.rep, 0, false); got != tc.want {
			t.Errorf("collectSummary = %q\nwant            %q", got, tc.want)
		}
	}
}

// TestFormatAge covers the compact ages of the table.
func TestFormatAge(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"0s": "-", "45s": "45s", "12m30s": "12m", "5h": "5h", "47h59m": "47h", "72h": "3d",
	} {
		d, err := parseAge(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := formatAge(d); got != want {
			t.Errorf("formatAge(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestDefaultRoots checks the default roots are go-microvm's own, where
// released go-microvm keeps its VMs: GO_MICROVM_DATA_DIR (when absolute)
// and ~/.config/go-microvm; never an embedder's (brood-box's
// ~/.config/broodbox/vms). XDG_CONFIG_HOME is ignored, since released
// go-microvm ignores it.
func TestDefaultRoots(t *testing.T) {
	// Not parallel: t.Setenv changes HOME and the data directory
	// variable for the whole process.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	def := filepath.Join(home, ".config", "go-microvm")
	for _, tc := range []struct {
		dataDir string
		want    []string
	}{
		{"", []string{def}},
		{"/data/vms/", []string{"/data/vms", def}},
		// Relative to the embedder's working directory, unknown here.
		{"relative", []string{def}},
	} {
		t.Setenv(envDataDir, tc.dataDir)
		got, err := defaultRoots()
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s=%q: defaultRoots() = %q, %v; want %q", envDataDir, tc.dataDir, got, err, tc.want)
		}
	}
}

// TestVersionString checks the --version line names the linked version and
// the toolchain.
func TestVersionString(t *testing.T) {
	t.Parallel()
	v := versionString()
	if !strings.HasPrefix(v, "go-microvm-gc "+version+" (") || !strings.Contains(v, "go1.") {
		t.Errorf("versionString() = %q", v)
	}
	t.Log(v)

	// Installed with go install ...@v1.2.3: no linked version, the module
	// version from the build info.
	info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/stacklok/go-microvm", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}}}
	got := formatVersion("dev", info)
	if !strings.HasPrefix(got, "go-microvm-gc v1.2.3 (github.com/stacklok/go-microvm v1.2.3, revision 0123456789ab, go1.") {
		t.Errorf("formatVersion(dev, v1.2.3) = %q", got)
	}
	if got := formatVersion("v9.9.9", info); !strings.HasPrefix(got, "go-microvm-gc v9.9.9 (") {
		t.Errorf("the linked version does not win: %q", got)
	}
}

// TestCheckRootSafeWithoutHOME: with $HOME unset (cron, a service,
// env -i), the account's home directory from the user database is still
// refused as a root, as is the directory above it.
func TestCheckRootSafeWithoutHOME(t *testing.T) {
	// Not parallel: t.Setenv changes HOME for the whole process.
	u, err := user.Current()
	if err != nil || !filepath.IsAbs(u.HomeDir) || u.HomeDir == "/" {
		t.Skipf("no home directory for this user: %v", err)
	}
	t.Setenv("HOME", "")
	for _, root := range []string{u.HomeDir, filepath.Dir(u.HomeDir)} {
		if err := checkRootSafe(root); err == nil {
			t.Errorf("checkRootSafe(%q) with HOME unset = nil, want a refusal", root)
		}
	}
	if err := checkRootSafe(t.TempDir()); err != nil {
		t.Errorf("checkRootSafe(a temporary directory) = %v", err)
	}
}
