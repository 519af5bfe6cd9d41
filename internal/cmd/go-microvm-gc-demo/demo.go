// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Command go-microvm-gc-demo builds a sandbox root with real processes in
// a temporary directory, runs go-microvm-gc list, collect and list again
// on it, and checks every expectation; it exits 0 only when all of them
// held. It builds go-microvm-gc and its own helper processes (the stand-in
// go-microvm-runner and a demo embedder) from this source tree with the go
// command, so it runs from a source tree: make demo.
//
//	go run ./internal/cmd/go-microvm-gc-demo [--keep] [-v]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/runner"
	"github.com/stacklok/go-microvm/state"
)

// demoGuard bounds every wait of the demo, so that a broken build fails
// instead of hanging. Building the helpers is not a wait: it comes first.
const demoGuard = 15 * time.Second

// commandGuard bounds each run of go-microvm-gc.
const commandGuard = time.Minute

func main() {
	flags := flag.NewFlagSet("go-microvm-gc-demo", flag.ContinueOnError)
	keep := flags.Bool("keep", false, "keep the sandbox directory afterwards and print its path")
	verbose := flags.Bool("v", false, "log debug details to stderr")
	if err := flags.Parse(os.Args[1:]); err != nil || flags.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: go-microvm-gc-demo [--keep] [-v]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	d := &demo{out: os.Stdout, errOut: os.Stderr, verbose: *verbose}
	code := d.run(ctx, *keep)
	stop()
	os.Exit(code)
}

// demoVM is one data directory of the sandbox and what the collector must
// make of it.
type demoVM struct {
	name string // path below the root
	dir  string // absolute data directory
	what string // one line for the reader

	wantClass  gc.Class
	wantReason gc.Reason

	proc *runner.Process // the runner, for VMs started through a claim
	sums map[string]string
}

func (v *demoVM) orphan() bool { return v.wantClass == gc.ClassOrphan }

// demo holds the sandbox and the tally of expectations.
type demo struct {
	out, errOut io.Writer
	verbose     bool

	tmp        string // everything the demo creates lives below it
	root       string // the sandbox root the collector works on
	outside    string // a sentinel directory outside the root
	gcPath     string // the go-microvm-gc command
	runnerPath string
	helperPath string
	// bin holds prebuilt executables; empty means build them.
	bin string
	// tmpParent is where tmp is made; empty means os.TempDir().
	tmpParent string

	vms         []*demoVM
	live        []*runner.Process // runners to stop at the end
	idle        *helperProcess    // the unrelated process holding a recorded PID
	outsideSums map[string]string

	passed, failed int
}

func (d *demo) say(format string, args ...any) {
	_, _ = fmt.Fprintf(d.out, format+"\n", args...)
}

func (d *demo) step(n int, title, explain string) {
	_, _ = fmt.Fprintf(d.out, "\n== Step %d: %s\n%s\n\n", n, title, explain)
}

// expect records and prints one expectation.
func (d *demo) expect(ok bool, format string, args ...any) {
	verdict := "PASS"
	if ok {
		d.passed++
	} else {
		d.failed++
		verdict = "FAIL"
	}
	_, _ = fmt.Fprintf(d.out, "  %s  %s\n", verdict, fmt.Sprintf(format, args...))
}

// logger logs the demo's own runner claims to errOut: debug details with
// -v, else errors only.
func (d *demo) logger() *slog.Logger {
	level := slog.LevelError
	if d.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(d.errOut, &slog.HandlerOptions{Level: level}))
}

func (d *demo) run(ctx context.Context, keep bool) int {
	tmp, err := os.MkdirTemp(d.tmpParent, "go-microvm-gc-demo-")
	if err != nil {
		d.say("demo: %v", err)
		return 1
	}
	// Canonical paths, so that what the collector reports compares equal
	// to what the demo built (macOS's /var is a symlink).
	if resolved, err := filepath.EvalSymlinks(tmp); err == nil {
		tmp = resolved
	}
	d.tmp = tmp
	d.root = filepath.Join(tmp, "root")
	d.outside = filepath.Join(tmp, "outside-the-root")
	defer d.cleanup(keep)

	d.step(1, "build a sandbox", "Nine data directories under "+d.root+",\n"+
		"with real runner processes (the stand-in go-microvm-runner, built from source):")
	if err := d.build(ctx); err != nil {
		d.say("demo: building the sandbox failed: %v", err)
		return 1
	}
	for _, v := range d.vms {
		d.say("  %-20s %s", v.name, v.what)
	}
	d.say("  %-20s %s", "escape", "a symlink out of the root, to "+d.outside+":\n"+
		strings.Repeat(" ", 23)+"a directory that looks like an orphan, which the collector must never touch")

	d.step(2, "list", "`go-microvm-gc list --sizes` reads the root and changes nothing.")
	untouched, err := checksums(d.root)
	if err != nil {
		d.say("demo: %v", err)
		return 1
	}
	before, err := d.showList(ctx)
	if err != nil {
		d.say("demo: %v", err)
		return 1
	}
	d.checkScan(before, false)
	sums, err := checksums(d.root)
	d.expect(err == nil && sameSums(untouched, sums), "list changed nothing under the root (%d entries)", len(untouched))

	d.step(3, "collect", "`go-microvm-gc collect --json` reclaims the orphans and keeps everything else;\n"+
		"the checks below read its report.")
	var rep collectReport
	if err := d.gcJSON(ctx, &rep, "collect"); err != nil {
		d.say("demo: %v", err)
		return 1
	}
	d.checkCollect(&rep)

	d.step(4, "list again", "Only what must be kept is left.")
	after, err := d.showList(ctx)
	if err != nil {
		d.say("demo: %v", err)
		return 1
	}
	d.checkScan(after, true)

	if d.failed > 0 {
		d.say("\nFAIL: %d of %d expectations did not hold.", d.failed, d.passed+d.failed)
		return 1
	}
	d.say("\nPASS: all %d expectations held.", d.passed)
	return 0
}

// The parts of go-microvm-gc's stable JSON documents the demo checks.
type (
	candidate struct {
		Path   string    `json:"path"`
		Class  gc.Class  `json:"class"`
		Reason gc.Reason `json:"reason"`
	}
	orphan struct {
		Path   string    `json:"path"`
		Reason gc.Reason `json:"reason"`
		Bytes  int64     `json:"bytes"`
	}
	listReport struct {
		Dirs []candidate `json:"dirs"`
	}
	collectReport struct {
		Reclaimed  []orphan    `json:"reclaimed"`
		Kept       []candidate `json:"kept"`
		Errors     []struct{ Path, Error string }
		BytesFreed int64 `json:"bytes_freed"`
	}
)

// gcCommand runs go-microvm-gc with args on the sandbox root, its output
// to stdout, and fails unless it exits 0.
func (d *demo) gcCommand(ctx context.Context, stdout io.Writer, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, commandGuard)
	defer cancel()
	args = append(args, "--root", d.root)
	if d.verbose {
		args = append(args, "-v")
	}
	cmd := exec.CommandContext(ctx, d.gcPath, args...)
	cmd.Stdout, cmd.Stderr = stdout, d.errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go-microvm-gc %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// gcJSON runs go-microvm-gc with args and --json, and decodes its output
// into doc.
func (d *demo) gcJSON(ctx context.Context, doc any, args ...string) error {
	var out bytes.Buffer
	if err := d.gcCommand(ctx, &out, append(args, "--json")...); err != nil {
		return err
	}
	if err := json.Unmarshal(out.Bytes(), doc); err != nil {
		return fmt.Errorf("go-microvm-gc %s --json: %w", strings.Join(args, " "), err)
	}
	return nil
}

// showList shows `go-microvm-gc list --sizes` and returns what
// `go-microvm-gc list --json` lists.
func (d *demo) showList(ctx context.Context) ([]candidate, error) {
	if err := d.gcCommand(ctx, d.out, "list", "--sizes"); err != nil {
		return nil, err
	}
	d.say("")
	var doc listReport
	err := d.gcJSON(ctx, &doc, "list")
	return doc.Dirs, err
}

// checkScan checks a listing: before collect every VM has its expected
// class; after it, only the kept ones are left.
func (d *demo) checkScan(cands []candidate, afterCollect bool) {
	byPath := map[string]candidate{}
	for _, c := range cands {
		byPath[c.Path] = c
	}
	for _, v := range d.vms {
		c, found := byPath[v.dir]
		switch {
		case afterCollect && v.orphan():
			d.expect(!found, "%s is no longer listed", v.name)
		case !found:
			d.expect(false, "%s is listed", v.name)
		case c.Class == v.wantClass && c.Reason == v.wantReason:
			d.expect(true, "%s listed as %s (%s)", v.name, c.Class, c.Reason)
		default:
			d.expect(false, "%s listed as %s (%s), want %s (%s)", v.name, c.Class, c.Reason, v.wantClass, v.wantReason)
		}
	}
	var escaped []string
	for _, c := range cands {
		if !strings.HasPrefix(c.Path, d.root+string(filepath.Separator)) && c.Path != d.root {
			escaped = append(escaped, c.Path)
		}
		if strings.HasPrefix(c.Path, filepath.Join(d.root, "escape")) {
			escaped = append(escaped, c.Path)
		}
	}
	d.expect(len(escaped) == 0, "nothing reached through the symlink is listed%s", list(escaped))
}

// checkCollect checks the report and the files on disk after collect.
func (d *demo) checkCollect(rep *collectReport) {
	reclaimed := map[string]orphan{}
	for _, o := range rep.Reclaimed {
		reclaimed[o.Path] = o
	}
	kept := map[string]candidate{}
	for _, c := range rep.Kept {
		kept[c.Path] = c
	}
	for _, v := range d.vms {
		if v.orphan() {
			d.checkReclaimed(v, reclaimed)
		} else {
			d.checkKept(v, kept)
		}
	}
	data, err := os.ReadFile(filepath.Join(d.root, "db", embedderFile))
	d.expect(err == nil && string(data) == embedderContent, "the embedder's own file beside db/data is intact")
	var errs []string
	for _, e := range rep.Errors {
		errs = append(errs, e.Path+": "+e.Error)
	}
	d.expect(len(rep.Errors) == 0, "no errors reported%s", list(errs))
	d.expect(rep.BytesFreed >= 4*demoRootfsBytes+halfCloneBytes, "%s freed, at least the five orphans' rootfs-work",
		formatBytes(rep.BytesFreed))
	d.expect(d.idle.alive(), "the unrelated process pid %d that reused a recorded PID is still running", d.idle.pid())

	sums, err := checksums(d.outside)
	d.expect(err == nil && sameSums(d.outsideSums, sums), "the directory outside the root is intact (%d files)", len(d.outsideSums))
	target, err := os.Readlink(filepath.Join(d.root, "escape"))
	d.expect(err == nil && target == d.outside, "the symlink out of the root is left as it was")
	entries, err := os.ReadDir(filepath.Join(d.root, gc.TrashName))
	d.expect(errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0), "the collector's trash is empty")
}

// checkReclaimed checks that the orphan v was reclaimed, for its reason,
// and is gone from disk.
func (d *demo) checkReclaimed(v *demoVM, reclaimed map[string]orphan) {
	o, ok := reclaimed[v.dir]
	switch {
	case !ok:
		d.expect(false, "%s reclaimed as %s: not reclaimed", v.name, v.wantReason)
	case o.Reason != v.wantReason:
		d.expect(false, "%s reclaimed as %s, want %s", v.name, o.Reason, v.wantReason)
	default:
		d.expect(true, "%s reclaimed as %s, %s freed", v.name, o.Reason, formatBytes(o.Bytes))
	}
	_, err := os.Lstat(v.dir)
	d.expect(errors.Is(err, os.ErrNotExist), "%s is gone from disk", v.name)
}

// checkKept checks that v was kept with its class, every file unchanged,
// and its runner still running when it is live.
func (d *demo) checkKept(v *demoVM, kept map[string]candidate) {
	c, ok := kept[v.dir]
	d.expect(ok && c.Class == v.wantClass, "%s kept as %s", v.name, v.wantClass)
	sums, err := checksums(v.dir)
	d.expect(err == nil && sameSums(v.sums, sums), "%s: all %d entries unchanged (SHA-256 of every file)", v.name, len(v.sums))
	if v.proc != nil && v.wantClass == gc.ClassLive {
		d.expect(v.proc.IsAlive(), "%s: runner pid %d still running", v.name, v.proc.PID())
	}
}

// formatBytes renders n bytes for a reader, in MB as the command does.
func formatBytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// list renders items for an expectation line: nothing when empty.
func list(items []string) string {
	if len(items) == 0 {
		return ""
	}
	return ": " + strings.Join(items, ", ")
}

func sameSums(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// cleanup stops what the demo started and removes the sandbox unless kept.
func (d *demo) cleanup(keep bool) {
	ctx, cancel := context.WithTimeout(context.Background(), demoGuard)
	defer cancel()
	for _, p := range d.live {
		if err := p.Stop(ctx); err != nil {
			d.say("demo: stop runner pid %d: %v", p.PID(), err)
		}
	}
	if d.idle != nil {
		d.idle.kill()
	}
	if keep {
		d.say("Stopped the live VMs; the sandbox is kept at %s", d.tmp)
		return
	}
	if err := os.RemoveAll(d.tmp); err != nil {
		d.say("demo: remove sandbox: %v", err)
		return
	}
	d.say("Stopped the live VMs and removed the sandbox.")
}

// build lays out the sandbox. Claims skip their pre-creation collection,
// so that the orphans made here stay for the collector to find.
func (d *demo) build(ctx context.Context) error {
	if err := d.prepare(ctx); err != nil {
		return err
	}

	web := d.add("web", "live: its runner holds the run lease", gc.ClassLive, gc.ReasonLeaseHeld)
	db := d.add("db/data", "live, in the root/<name>/data layout, with the embedder's own file beside it", gc.ClassLive, gc.ReasonLeaseHeld)
	build1 := d.add("build-1", "embedder gone, runner SIGKILLed; its rootfs-work also holds a symlink out of the root", gc.ClassOrphan, gc.ReasonRunEnded)
	build2 := d.add("build-2/data", "embedder gone, runner SIGKILLed", gc.ClassOrphan, gc.ReasonRunEnded)
	stopped := d.add("stopped", "cleanly stopped: a user may start it again", gc.ClassStopped, gc.ReasonInactive)
	half := d.add("half-cloned", "embedder SIGKILLed in the middle of the rootfs clone, before any runner", gc.ClassOrphan, gc.ReasonRunEnded)
	reused := d.add("reused-pid", "released-format record whose PID now belongs to an unrelated live process", gc.ClassOrphan, gc.ReasonPIDReused)
	rebooted := d.add("before-reboot", "released-format record from before this boot (its PID 1 is alive, and meaningless)", gc.ClassOrphan, gc.ReasonRebooted)
	fifo := d.add("fifo-state", "a FIFO in place of the state file: unreadable, kept and reported", gc.ClassUnreadable, gc.ReasonUnreadable)

	for _, v := range []*demoVM{web, db, build1, build2, stopped} {
		if err := d.startVM(ctx, v); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(d.root, "db", embedderFile), []byte(embedderContent), 0o600); err != nil {
		return err
	}
	if err := os.Symlink(d.outside, filepath.Join(build1.dir, "rootfs-work", "escape")); err != nil {
		return err
	}
	stopCtx, cancel := context.WithTimeout(ctx, demoGuard)
	defer cancel()
	if err := stopped.proc.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop %s: %w", stopped.name, err)
	}
	d.live = slices.DeleteFunc(d.live, func(p *runner.Process) bool { return p == stopped.proc })

	if err := d.killedEmbedder(half); err != nil {
		return err
	}
	if err := d.releasedRecords(reused, rebooted); err != nil {
		return err
	}
	if err := d.fifoState(fifo); err != nil {
		return err
	}
	if err := os.Symlink(d.outside, filepath.Join(d.root, "escape")); err != nil {
		return err
	}

	if err := d.killRunners(build1, build2); err != nil {
		return err
	}
	// SIGKILL is asynchronous: wait until the kernel has dropped the
	// leases of the killed runners and the killed embedder.
	for _, v := range []*demoVM{build1, build2, half} {
		if err := waitLeaseFree(v.dir); err != nil {
			return err
		}
	}
	return d.recordSums()
}

// prepare makes the root and the executables' directory, builds the
// command and the helpers unless d.bin holds prebuilt ones, and makes the
// directory outside the root.
func (d *demo) prepare(ctx context.Context) error {
	for _, dir := range []string{d.root, filepath.Join(d.tmp, "bin")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	bin := d.bin
	if bin == "" {
		bin = filepath.Join(d.tmp, "bin")
		if err := buildDemoHelpers(ctx, bin); err != nil {
			return err
		}
	}
	d.gcPath = filepath.Join(bin, "go-microvm-gc")
	d.runnerPath = filepath.Join(bin, runner.RunnerName)
	d.helperPath = filepath.Join(bin, "demohelper")
	return d.buildOutside()
}

// killRunners SIGKILLs the runners of vms, as a crash would, after the
// demo, their creator, let go of them as an embedder does when it exits:
// a VM is kept while its runner or its creator lives.
func (d *demo) killRunners(vms ...*demoVM) error {
	for _, v := range vms {
		if err := v.proc.Close(); err != nil {
			return fmt.Errorf("let go of %s: %w", v.name, err)
		}
		if err := syscall.Kill(v.proc.PID(), syscall.SIGKILL); err != nil {
			return fmt.Errorf("kill runner of %s: %w", v.name, err)
		}
		d.live = slices.DeleteFunc(d.live, func(p *runner.Process) bool { return p == v.proc })
	}
	return nil
}

// recordSums records the checksums of every directory the collector must
// leave as it is: the kept VMs' and the one outside the root.
func (d *demo) recordSums() error {
	var err error
	for _, v := range d.vms {
		if !v.orphan() {
			if v.sums, err = checksums(v.dir); err != nil {
				return err
			}
		}
	}
	d.outsideSums, err = checksums(d.outside)
	return err
}

func (d *demo) add(name, what string, class gc.Class, reason gc.Reason) *demoVM {
	v := &demoVM{name: name, dir: filepath.Join(d.root, filepath.FromSlash(name)), what: what, wantClass: class, wantReason: reason}
	d.vms = append(d.vms, v)
	return v
}

// The embedder's own file, beside db/data: the collector must not touch it.
const (
	embedderFile    = "embedder.json"
	embedderContent = `{"owner": "the embedder"}` + "\n"
)

// demoImage is the image name recorded in the sandbox's states.
const demoImage = "ghcr.io/example/sandbox:1.0"

// startVM does what an embedder does: claim, clone the rootfs, spawn.
func (d *demo) startVM(ctx context.Context, v *demoVM) error {
	claim, err := runner.NewClaim(ctx, v.dir,
		runner.WithoutCollect(), runner.WithName(strings.SplitN(v.name, "/", 2)[0]), runner.WithImage(demoImage),
		runner.WithStopTimeout(5*time.Second), runner.WithLogger(d.logger()))
	if err != nil {
		return err
	}
	// A no-op after Spawn; before it, the failure being returned is what
	// the demo reports, not the abort's.
	defer func() { _ = claim.Abort() }()
	if err := writeRootfs(filepath.Join(v.dir, "rootfs-work")); err != nil {
		return err
	}
	v.proc, err = claim.Spawn(ctx, runner.Config{
		RootPath:   filepath.Join(v.dir, "rootfs-work"),
		NumVCPUs:   1,
		RAMMiB:     256,
		ConsoleLog: filepath.Join(v.dir, "console.log"),
		VMLogPath:  filepath.Join(v.dir, "vm.log"),
		RunnerPath: d.runnerPath,
	})
	if err != nil {
		return err
	}
	d.live = append(d.live, v.proc)
	return nil
}

// killedEmbedder runs an embedder in a child process that claims v, starts
// cloning the rootfs, and is SIGKILLed before it spawns any runner.
func (d *demo) killedEmbedder(v *demoVM) error {
	h, err := startHelper(d.helperPath, "embedder", v.dir)
	if err != nil {
		return fmt.Errorf("start embedder: %w", err)
	}
	defer h.kill()
	if line, err := h.readLine(); err != nil || line != embedderCloning {
		return fmt.Errorf("embedder for %s did not start cloning: %q %v", v.name, line, err)
	}
	return nil
}

// releasedRecords writes two states the way released go-microvm does: no
// run marker, no exact identity, only pid and pid_start_time.
func (d *demo) releasedRecords(reused, rebooted *demoVM) error {
	// The record is half a minute older than the process now holding its
	// PID, as when the runner died and the PID was handed out again.
	recorded := time.Now().Add(-30 * time.Second)
	idle, err := startHelper(d.helperPath, "idle")
	if err != nil {
		return fmt.Errorf("start unrelated process: %w", err)
	}
	d.idle = idle
	if err := writeReleasedVM(reused.dir, idle.pid(), recorded); err != nil {
		return err
	}

	boot, err := bootTime()
	if err != nil {
		return err
	}
	return writeReleasedVM(rebooted.dir, 1, boot.Add(-time.Hour))
}

// fifoState makes a data directory whose state file is a FIFO: a reader
// that opened it naively would block forever.
func (d *demo) fifoState(v *demoVM) error {
	if err := writeRootfs(filepath.Join(v.dir, "rootfs-work")); err != nil {
		return err
	}
	if err := syscall.Mkfifo(filepath.Join(v.dir, state.FileName), 0o600); err != nil {
		return fmt.Errorf("make FIFO: %w", err)
	}
	return nil
}

// buildOutside makes the sentinel directory outside the root. It looks
// like an orphan (active, dead PID) so that a collector that followed the
// symlink would delete it.
func (d *demo) buildOutside() error {
	if err := writeReleasedVM(d.outside, deadPID, time.Now()); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d.outside, "precious.txt"), []byte("never delete me\n"), 0o600)
}

// waitLeaseFree waits until nobody holds dir's run lease.
func waitLeaseFree(dir string) error {
	deadline := time.Now().Add(demoGuard)
	for {
		held, err := state.ProbeLease(dir)
		if err != nil {
			return err
		}
		if !held {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("run lease of %s still held %s after SIGKILL", dir, demoGuard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
