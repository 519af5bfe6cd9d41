// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/runner"
	"github.com/stacklok/go-microvm/state"
)

// liveVM is a stand-in runner started through a creation claim, with the
// digest of its rootfs taken before it started.
type liveVM struct {
	dir string
	p   *runner.Process
	sum map[string]string
}

// startLiveVM claims dir (without the pre-creation collection, so the test
// decides when collectors run), clones a rootfs of nfiles files and spawns
// the stand-in runner on it, watching its files every 5 ms.
func startLiveVM(t *testing.T, dir string, r *rand.Rand, nfiles int) *liveVM {
	t.Helper()
	// Build before the timeout starts: a cold build cache takes minutes.
	runnerPath := standinPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := runner.NewClaim(ctx, dir, runner.WithoutCollect())
	if err != nil {
		t.Fatalf("claim %s: %v", dir, err)
	}
	rootfs := filepath.Join(dir, "rootfs-work")
	buildTree(t, rootfs, r, nfiles, 4)
	ready := filepath.Join(t.TempDir(), "ready")
	t.Setenv("STANDIN_READY", ready)
	p, err := c.Spawn(ctx, runner.Config{
		RootPath:   rootfs,
		NumVCPUs:   1,
		RAMMiB:     64,
		ConsoleLog: filepath.Join(dir, "console.log"),
		RunnerPath: runnerPath,
		VMLogPath:  filepath.Join(dir, "vm.log"),
	})
	if err != nil {
		c.Abort()
		t.Fatalf("spawn runner in %s: %v", dir, err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		p.Stop(sctx)
	})
	if pid := waitPIDFile(t, ready, 20*time.Second); pid != p.PID() {
		t.Fatalf("stand-in in %s reported pid %d, runner says %d", dir, pid, p.PID())
	}
	return &liveVM{dir: dir, p: p, sum: treeSum(t, rootfs)}
}

// orphanSpec is one orphan the kill test keeps re-creating.
type orphanSpec struct {
	dir     string            // the data directory
	foreign map[string]string // files that are not go-microvm's, relative to dir's parent
	marker  bool              // true: marker set; false: the PID rules decide
}

// makeTemplate builds, outside the root, the rootfs tree an orphan is
// cloned from: nfiles files in nested directories, symlinks out to the
// sentinel (absolute, relative, dangling, looping, nested) and a hard link
// to a sentinel file.
func makeTemplate(t *testing.T, dir, sentinel string, r *rand.Rand, nfiles int) {
	t.Helper()
	buildTree(t, dir, r, nfiles, 6)
	escapes := map[string]string{
		"escape-dir":              sentinel,
		"escape-file":             filepath.Join(sentinel, "precious.txt"),
		"escape-rel":              "../../../../../../../../../../" + strings.TrimPrefix(sentinel, "/"),
		"d000-dangling":           "/nonexistent/stress",
		"loop-a":                  "loop-b",
		"loop-b":                  "loop-a",
		"deep/escape-deeper/into": sentinel,
	}
	for name, target := range escapes {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(sentinel, "hardlink-target.txt"), filepath.Join(dir, "hardlink")); err != nil {
		t.Fatal(err)
	}
}

// cloneTree recreates the template tree at dst: directories made afresh,
// files hard-linked (so every file of an orphan is also a hard link to a
// file outside the root, which must survive), symlinks copied.
func cloneTree(t *testing.T, template, dst string) {
	t.Helper()
	err := filepath.WalkDir(template, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(template, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		default:
			return os.Link(p, to)
		}
	})
	if err != nil {
		t.Fatalf("clone %s: %v", template, err)
	}
}

// layOrphan clones the orphan's rootfs from its template, then writes the
// logs, a stale temp file, the foreign files and the state, in that order,
// as a crashed creator would have left them.
func layOrphan(t *testing.T, o orphanSpec, template string) {
	t.Helper()
	rootfs := filepath.Join(o.dir, "rootfs-work")
	if _, err := os.Lstat(rootfs); err == nil {
		// The state file is the commit point and goes last: a rootfs
		// without a state file could never be reclaimed.
		t.Fatalf("%s: rootfs-work left behind without a state file", o.dir)
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cloneTree(t, template, rootfs)
	for _, name := range []string{"console.log", "vm.log", "state-4242.json.tmp"} {
		if err := os.WriteFile(filepath.Join(o.dir, name), []byte("log\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for rel, content := range o.foreign {
		p := filepath.Join(filepath.Dir(o.dir), rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if o.marker {
		markOrphan(t, o.dir)
		return
	}
	writeStateFile(t, o.dir, func(s *state.State) {
		s.Active = true
		s.PID = deadPID(t)
		// Recorded an hour ago: a process now holding the PID started
		// after the record, so it is "PID reused", never this runner.
		s.PIDStartTime = time.Now().Add(-time.Hour)
	})
}

// foreignSum digests each foreign file of o.
func foreignSum(t *testing.T, o orphanSpec) map[string]string {
	t.Helper()
	m := map[string]string{}
	for rel := range o.foreign {
		h, err := fileDigest(filepath.Join(filepath.Dir(o.dir), rel))
		if err != nil {
			t.Fatalf("foreign file: %v", err)
		}
		m[rel] = h
	}
	return m
}

// killPhase is where a SIGKILL landed in the collector's life.
type killPhase int

const (
	killBeforeCollect killPhase = iota // process starting, gc.Collect not yet called
	killInCollect                      // inside gc.Collect
	killAfterCollect                   // Collect had returned
)

// runAndKill starts a collector helper over root and SIGKILLs it after
// delay. It returns the phase the kill landed in.
func runAndKill(t *testing.T, root string, delay time.Duration) (phase killPhase, startAt, doneAt time.Duration) {
	t.Helper()
	cmd := helperCmd("collect", envRoot+"="+root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start collector: %v", err)
	}
	type line struct {
		text string
		at   time.Duration
	}
	lines := make(chan line, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- line{sc.Text(), time.Since(t0)}
		}
		close(lines)
	}()
	time.Sleep(delay)
	cmd.Process.Signal(syscall.SIGKILL)
	phase = killBeforeCollect
	for l := range lines {
		switch {
		case l.text == "start":
			phase, startAt = killInCollect, l.at
		case strings.HasPrefix(l.text, "done"):
			phase, doneAt = killAfterCollect, l.at
		}
	}
	err = cmd.Wait()
	if phase == killAfterCollect && err != nil && !isKilled(err) {
		t.Errorf("collector failed: %v\n%s", err, stderr.String())
	}
	return phase, startAt, doneAt
}

// calibrate runs one collector helper over root to its end and returns how
// long it took to enter gc.Collect and to exit.
func calibrate(t *testing.T, root string) (startup, total time.Duration) {
	t.Helper()
	cmd := helperCmd("collect", envRoot+"="+root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start collector: %v", err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "start" {
			startup = time.Since(t0)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("calibration collect: %v\n%s", err, stderr.String())
	}
	return startup, time.Since(t0)
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestKillAnywhere SIGKILLs a collector process at random instants while it
// reclaims orphans with deep trees, beside live and stopped VMs, foreign
// files, and a sentinel tree outside the root reachable through symlinks
// and a hard link from inside the orphans. After every kill the live and
// stopped VMs' files, the foreign files and the sentinel are unchanged; at
// the end one clean Collect leaves no orphan and no trash, and no stand-in
// runner saw a file of its own disappear.
func TestKillAnywhere(t *testing.T) {
	kills := envInt(t, "STRESS_KILLS", 30)
	nfiles := envInt(t, "STRESS_FILES", 1000)
	r, seed := newRand(t)
	top := t.TempDir()
	root := filepath.Join(top, "root")
	sentinel := filepath.Join(top, "sentinel")
	makeSentinel(t, sentinel)
	sentinelSum := treeSum(t, sentinel)
	report := filepath.Join(top, "standin-report")
	t.Setenv("STANDIN_WATCH", "5ms")
	t.Setenv("STANDIN_REPORT", report)
	t.Setenv("STRESS_SEED", fmt.Sprint(seed))

	// Live VMs at depth 1 and 2, one of them sharing a parent with an
	// orphan, and a cleanly stopped VM whose files must stay too.
	lives := []*liveVM{
		startLiveVM(t, filepath.Join(root, "live-a"), r, 60),
		startLiveVM(t, filepath.Join(root, "live-b", "data"), r, 60),
		startLiveVM(t, filepath.Join(root, "shared", "live-c"), r, 40),
	}
	stopped := startLiveVM(t, filepath.Join(root, "stopped-d"), r, 100)
	{
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := stopped.p.Stop(ctx); err != nil {
			t.Fatalf("stop %s: %v", stopped.dir, err)
		}
		cancel()
	}
	// A runner started as released go-microvm starts it: no lease, no
	// marker, judged by its PID and pid_start_time alone.
	released := startReleasedVM(t, filepath.Join(root, "released-f"), r, 60)

	orphans := []orphanSpec{
		{dir: filepath.Join(root, "orphan-a"), marker: true, foreign: map[string]string{
			"orphan-a/notes.txt":       "embedder notes\n",
			"orphan-a/state.json":      `{"embedder":"own state"}`,
			"orphan-a/cache/blob.tar":  strings.Repeat("c", 5000),
			"orphan-a/rootfs-work.bak": "not go-microvm's\n",
		}},
		{dir: filepath.Join(root, "orphan-b", "data"), marker: false, foreign: map[string]string{
			"embedder.log": "beside data/, inside the root\n",
		}},
		{dir: filepath.Join(root, "orphan-c"), marker: true},
		{dir: filepath.Join(root, "shared", "orphan-e"), marker: false},
		{dir: filepath.Join(root, "orphan-n"), marker: true},
	}
	foreign := make([]map[string]string, len(orphans))
	templates := filepath.Join(top, "templates")
	for i, o := range orphans {
		makeTemplate(t, filepath.Join(templates, fmt.Sprint(i)), sentinel, r, nfiles)
		layOrphan(t, o, filepath.Join(templates, fmt.Sprint(i)))
		foreign[i] = foreignSum(t, o)
	}
	templateSum := treeSum(t, templates)
	// A live VM's data directory nested inside orphan-n's rootfs-work,
	// its lease held by another process: it must stay where it is,
	// whole, while the lease is held.
	nested := startNestedVM(t, root, orphans[len(orphans)-1].dir, filepath.Join("srv", "nested-live"), r)
	nestedLive := true

	// Calibrate: one collection left to finish, timed from the start of the
	// process to gc.Collect being entered and to its return, so kill delays
	// can be spread over the whole of a collector's life.
	startup, full := calibrate(t, root)
	t.Logf("one full collection of %d orphans of %d files each: start-up %v, total %v",
		len(orphans), nfiles, startup, full)

	check := func(when string) {
		t.Helper()
		for _, v := range lives {
			checkSame(t, "live rootfs ("+when+")", filepath.Join(v.dir, "rootfs-work"), v.sum)
		}
		checkSame(t, "stopped rootfs ("+when+")", filepath.Join(stopped.dir, "rootfs-work"), stopped.sum)
		checkSame(t, "released rootfs ("+when+")", filepath.Join(released.dir, "rootfs-work"), released.sum)
		if nestedLive {
			nested.check(t, when)
		}
		checkSame(t, "sentinel ("+when+")", sentinel, sentinelSum)
		for i, o := range orphans {
			for rel, want := range foreign[i] {
				got, err := fileDigest(filepath.Join(filepath.Dir(o.dir), rel))
				if err != nil || got != want {
					t.Errorf("foreign file %s (%s): %v", rel, when, err)
				}
			}
		}
	}
	check("after calibration")

	phases := map[killPhase]int{}
	recreated := 0
	for i := 0; i < kills && !t.Failed(); i++ {
		for j, o := range orphans {
			if _, err := os.Lstat(filepath.Join(o.dir, state.FileName)); errors.Is(err, fs.ErrNotExist) {
				layOrphan(t, o, filepath.Join(templates, fmt.Sprint(j)))
				recreated++
			}
		}
		// Most kills aim inside Collect; a fifth anywhere from start-up on.
		delay := startup + time.Duration(r.Int64N(int64(full-startup)+1))
		if r.IntN(5) == 0 {
			delay = time.Duration(r.Int64N(int64(full) + 1))
		}
		phase, startAt, doneAt := runAndKill(t, root, delay)
		phases[phase]++
		// The machine's load changes while the suite runs (other test
		// packages share the cores), so the window follows what the last
		// collector that ran to its end took, rather than the calibration.
		if phase == killAfterCollect && doneAt > startAt {
			startup, full = startAt, doneAt
		}
		check(fmt.Sprintf("kill %d after %v", i+1, delay))
	}
	t.Logf("%d kills: %d during start-up, %d inside Collect, %d after Collect returned; orphans re-created %d times",
		kills, phases[killBeforeCollect], phases[killInCollect], phases[killAfterCollect], recreated)
	// How many kills land inside Collect depends on the machine's load;
	// the window adapts, so none at all means the test exercised nothing.
	if kills >= 20 && phases[killInCollect] == 0 {
		t.Errorf("none of %d kills landed inside Collect", kills)
	}

	// The nested VM ends; the final clean collection finishes whatever
	// the kills interrupted, the nested directory included.
	nestedLost := nested.check(t, "before the final collect")
	nested.release()
	nestedLive = false
	rep, err := gc.Collect(root)
	if err != nil {
		t.Fatalf("final collect: %v", err)
	}
	for _, pe := range rep.Errors {
		t.Errorf("final collect error: %v", &pe)
	}
	t.Logf("final collect: %d reclaimed, %d bytes freed, %d kept", len(rep.Reclaimed), rep.BytesFreed, len(rep.Kept))
	if at := nested.locations(); len(at) != 0 {
		t.Errorf("nested directory still at %q after its lease ended and the final collect", at)
	}
	check("after the final collect")
	checkSame(t, "orphan templates (hard links)", templates, templateSum)
	if o, err := gc.Orphans(root); err != nil || len(o) != 0 {
		t.Errorf("after the final collect: orphans %v, err %v", o, err)
	}
	if left := trashEntries(t, root); len(left) != 0 {
		t.Errorf("after the final collect the trash holds %v", left)
	}
	cl := classes(t, root)
	for _, v := range lives {
		if c := cl[v.dir]; c.Class != gc.ClassLive {
			t.Errorf("%s: class %q (%s), want live", v.dir, c.Class, c.Reason)
		}
	}
	if c := cl[released.dir]; c.Class != gc.ClassLive {
		t.Errorf("%s: class %q (%s), want live", released.dir, c.Class, c.Reason)
	}
	if c := cl[stopped.dir]; c.Class != gc.ClassStopped {
		t.Errorf("%s: class %q (%s), want stopped", stopped.dir, c.Class, c.Reason)
	}
	for _, o := range orphans {
		if _, err := os.Lstat(filepath.Join(o.dir, "rootfs-work")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: rootfs-work still there after the final collect (err %v)", o.dir, err)
		}
	}
	for _, v := range lives {
		if !v.p.IsAlive() {
			t.Errorf("live runner %d of %s died during the test", v.p.PID(), v.dir)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := v.p.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", v.dir, err)
		}
		cancel()
		checkSame(t, "live rootfs (after stop)", filepath.Join(v.dir, "rootfs-work"), v.sum)
	}
	if !released.alive() {
		t.Errorf("released runner of %s died during the test", released.dir)
	}
	released.stop(t)
	checkSame(t, "released rootfs (after stop)", filepath.Join(released.dir, "rootfs-work"), released.sum)
	lines := reportLines(t, report)
	for _, l := range lines {
		t.Errorf("stand-in saw a loss: %s", l)
	}
	releasedLost, _ := diffSums(released.sum, treeSum(t, filepath.Join(released.dir, "rootfs-work")), 0)
	t.Logf("files lost: %d (stand-in reports: %d lines; of them released-format VM %d, nested VM %d)",
		countLost(t, lives, stopped)+releasedLost+nestedLost, len(lines), releasedLost, nestedLost)
}

// countLost counts the live and stopped VMs' files that are missing or
// changed now.
func countLost(t *testing.T, lives []*liveVM, stopped *liveVM) int {
	t.Helper()
	lost := 0
	for _, v := range append(append([]*liveVM(nil), lives...), stopped) {
		n, _ := diffSums(v.sum, treeSum(t, filepath.Join(v.dir, "rootfs-work")), 0)
		lost += n
	}
	return lost
}
