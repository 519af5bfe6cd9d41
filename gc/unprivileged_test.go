// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// nobody is the unprivileged user the tests collect as.
const nobody = 65534

// helperReport is a Report as the collectreport helper prints it.
type helperReport struct {
	Reclaimed []string
	Kept      []Candidate
	Errors    []string
	Deferred  bool
}

// helperCollectReport collects root (under RLIMIT_NOFILE=GC_TEST_NOFILE
// when set) and prints the report as JSON.
func helperCollectReport(root string) int {
	if err := testproc.LimitFiles("GC_TEST_NOFILE"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rep, err := Collect(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(newHelperReport(rep)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// newHelperReport is rep as a helper prints it.
func newHelperReport(rep *Report) helperReport {
	out := helperReport{Kept: rep.Kept, Deferred: rep.Deferred}
	for _, o := range rep.Reclaimed {
		out.Reclaimed = append(out.Reclaimed, o.Path)
	}
	for _, e := range rep.Errors {
		out.Errors = append(out.Errors, e.Error())
	}
	for i := range out.Kept {
		out.Kept[i].Err = nil
	}
	return out
}

// collectAs runs Collect over root in a helper process, as uid nobody
// when unprivileged, under RLIMIT_NOFILE nofile when not 0.
func collectAs(t *testing.T, root string, unprivileged bool, nofile int) helperReport {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	if unprivileged {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("setpriv not installed")
		}
		args = []string{setpriv, fmt.Sprintf("--reuid=%d", nobody), fmt.Sprintf("--regid=%d", nobody), "--clear-groups", "--"}
		exe = testproc.CopyTestBinary(t, testproc.PublicTempDir(t), "gc.test")
	}
	args = append(args, exe, root)
	ctx, cancel := context.WithTimeout(context.Background(), 4*guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), testproc.Env("collectreport"))
	if nofile > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GC_TEST_NOFILE=%d", nofile))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("collect helper: %v: %s", err, stderr.String())
	}
	var rep helperReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("collect helper output %q: %v", stdout.String(), err)
	}
	return rep
}

// giveTree gives everything below root to uid and gid.
func giveTree(t *testing.T, root string, uid int) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop privileges with setpriv")
	}
}

// TestUnprivilegedReadOnlyDataDir: a collector running as the owner of a
// read-only (0555) data directory, with or without a lock file and with a
// read-only rootfs-work, reclaims it: it makes what it owns writable, as
// released go-microvm's own removal does.
func TestUnprivilegedReadOnlyDataDir(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	root := filepath.Join(testproc.PublicTempDir(t), "root")
	withLock := filepath.Join(root, "withlock")
	noLock := filepath.Join(root, "nolock")
	nested := filepath.Join(root, "team", "data")
	for _, d := range []string{withLock, noLock, nested} {
		makeVM(t, d, orphanState())
	}
	if err := os.Remove(filepath.Join(noLock, state.LockFileName)); err != nil {
		t.Fatal(err)
	}
	giveTree(t, root, nobody)
	for _, d := range []string{filepath.Join(withLock, rootfsWorkName), filepath.Join(withLock, rootfsWorkName, "etc"), withLock, noLock, nested} {
		if err := os.Chmod(d, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	rep := collectAs(t, root, true, 0)
	if len(rep.Reclaimed) != 3 || len(rep.Kept) != 0 || len(rep.Errors) != 0 {
		t.Fatalf("report %+v; want the three orphans reclaimed", rep)
	}
	mustNotExist(t, withLock, noLock, filepath.Join(root, "team"), filepath.Join(root, TrashName), filepath.Join(root, LockName()))
}

// TestUnprivilegedNotOwner: a read-only data directory the collector does
// not own is kept, run after run, with the same clear reason, and nothing
// in it changes.
func TestUnprivilegedNotOwner(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	root := filepath.Join(testproc.PublicTempDir(t), "root")
	dir := filepath.Join(root, "vm")
	makeVM(t, dir, orphanState())
	giveTree(t, root, nobody)
	if err := os.Lchown(dir, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	var details []string
	for range 2 {
		rep := collectAs(t, root, true, 0)
		if len(rep.Reclaimed) != 0 || len(rep.Kept) != 1 || len(rep.Errors) != 1 {
			t.Fatalf("report %+v; want the directory kept with one error", rep)
		}
		k := rep.Kept[0]
		if k.Class != ClassOrphan || !strings.Contains(k.Detail, "not writable by this user") {
			t.Errorf("kept %+v; want an orphan kept because it is not writable by this user", k)
		}
		details = append(details, k.Detail+"|"+rep.Errors[0])
	}
	if details[0] != details[1] {
		t.Errorf("reasons differ between runs: %q", details)
	}
	sameSnapshot(t, "foreign data directory", before, snapshot(t, dir))
}

// TestFewDescriptors: a collector that runs out of descriptors (here
// RLIMIT_NOFILE 40) leaves nothing a later run cannot finish: run again
// under the same limit until it reports no progress, then a run without
// the limit reclaims everything with no trash left.
func TestFewDescriptors(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	for i := range 6 {
		dir := filepath.Join(root, fmt.Sprintf("vm%d", i))
		makeVM(t, dir, orphanState())
		deep := filepath.Join(dir, rootfsWorkName)
		for j := range 40 {
			deep = filepath.Join(deep, fmt.Sprintf("d%d", j))
		}
		writeFile(t, filepath.Join(deep, "f"), "x")
	}
	var last helperReport
	for range 5 {
		last = collectAs(t, root, false, 40)
		if len(last.Errors) == 0 && !last.Deferred {
			break
		}
		t.Logf("run under RLIMIT_NOFILE=40: %d reclaimed, errors %q", len(last.Reclaimed), last.Errors)
	}
	if len(last.Errors) != 0 {
		t.Errorf("runs under RLIMIT_NOFILE=40 do not finish: %q", last.Errors)
	}
	rep := collect(t, root)
	if len(rep.Kept) != 0 {
		t.Errorf("kept %+v", rep.Kept)
	}
	entries, err := os.ReadDir(root)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("left in root: %v", entries)
	}
}
