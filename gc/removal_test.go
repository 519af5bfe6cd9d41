// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// smallVM lays out a data directory with a small rootfs-work and state s.
func smallVM(t *testing.T, dir string, s *state.State) {
	t.Helper()
	writeFile(t, filepath.Join(dir, rootfsWorkName, "etc", "hostname"), "vm\n")
	writeFile(t, filepath.Join(dir, consoleLogName), "console\n")
	writeJSON(t, dir, s)
}

// startLeasedRunner starts the stand-in runner holding the run lease on
// dir, as a spawned runner does (the lease's descriptor inherited, the
// parent's copy closed), and records it in dir's state. It runs until it
// is killed or the test ends.
func startLeasedRunner(t *testing.T, dir string) *exec.Cmd {
	t.Helper()
	l, err := state.AcquireLease(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(runnerPath, fmt.Sprintf(`{"root_path":%q}`, t.TempDir()))
	cmd.ExtraFiles = []*os.File{l.File()}
	startCmd(t, cmd)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	writeJSON(t, dir, &state.State{Version: 1, Active: true, Name: "nested", PID: cmd.Process.Pid,
		PIDStartTime: time.Now(), CreatedAt: time.Now(), Leased: true})
	return cmd
}

// TestNestedLiveDataDirKept: a live VM's data directory nested inside an
// orphan's rootfs-work (one whose lease a running stand-in runner holds,
// one of a released runner recorded by PID alone) stays at its path,
// whole: rootfs-work is removed in place around it, never moved, and the
// orphan is kept, reported, for the next run, which reclaims it all once
// those VMs are gone.
func TestNestedLiveDataDirKept(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	orphan := filepath.Join(root, "old")
	makeVM(t, orphan, orphanState())
	leased := filepath.Join(orphan, rootfsWorkName, "srv", "leased")
	released := filepath.Join(orphan, rootfsWorkName, "released")
	smallVM(t, leased, orphanState())
	leaseRunner := startLeasedRunner(t, leased)
	runner := startRunner(t)
	info := lookup(t, runner.Process.Pid)
	smallVM(t, released, &state.State{Version: 1, Active: true, Name: "rel", PID: info.PID,
		PIDStartTime: info.Started.Add(time.Second), CreatedAt: time.Now()})
	beforeLeased, beforeReleased := snapshot(t, leased), snapshot(t, released)

	rep, err := Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Reclaimed) != 0 || len(rep.Kept) != 1 || rep.Kept[0].Path != orphan || rep.Kept[0].Class != ClassOrphan {
		t.Fatalf("reclaimed %+v, kept %+v; want the orphan kept for the next run", rep.Reclaimed, rep.Kept)
	}
	inUse := map[string]bool{}
	for _, e := range rep.Errors {
		if !errors.Is(e.Err, fstree.ErrInUse) || e.Path != orphan {
			t.Errorf("error %v; want only the nested directories reported in use", e)
		}
		for _, p := range []string{leased, released} {
			inUse[p] = inUse[p] || strings.Contains(e.Error(), p)
		}
	}
	if !inUse[leased] || !inUse[released] {
		t.Errorf("errors %v; want both nested directories reported", rep.Errors)
	}
	sameSnapshot(t, "leased nested directory", beforeLeased, snapshot(t, leased))
	sameSnapshot(t, "released nested directory", beforeReleased, snapshot(t, released))
	mustExist(t, filepath.Join(orphan, state.FileName))
	mustNotExist(t, filepath.Join(orphan, rootfsWorkName, "etc"), filepath.Join(root, TrashName))

	_ = leaseRunner.Process.Kill()
	_ = leaseRunner.Wait()
	_ = runner.Process.Kill()
	_ = runner.Wait()
	rep = collect(t, root)
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != orphan {
		t.Errorf("second run reclaimed %+v; want the orphan", rep.Reclaimed)
	}
	mustNotExist(t, filepath.Join(root, TrashName), orphan)
}

// TestKilledReclaimLeavesNoEmptyDir: a collector killed while it deletes
// a committed rootfs-work from the trash has already removed the data
// directory and its emptied parent: the next run finds only trash, and
// leaves nothing.
func TestKilledReclaimLeavesNoEmptyDir(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	dir := filepath.Join(root, "p", "data")
	makeVM(t, dir, orphanState())
	if err := testproc.Start(t, "collect-killed", []string{root}).Wait(); err == nil {
		t.Fatal("the collector was not killed: no rootfs-work to delete?")
	}
	mustNotExist(t, dir, filepath.Dir(dir))
	mustExist(t, filepath.Join(root, TrashName))
	collect(t, root)
	if left, err := os.ReadDir(root); err != nil || len(left) != 0 {
		t.Errorf("root holds %v (%v) after the next run; want nothing", left, err)
	}
}

// TestRemnantDataDirRemoved: a directory holding no state file, only a
// state lock file and temporary saves (what a reclaim killed just after
// its commit leaves), is removed with its emptied parent, unless its
// lease or state lock is held. A directory holding anything else, or
// nothing, is not known to be go-microvm's and stays.
func TestRemnantDataDirRemoved(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	lockOnly := filepath.Join(root, "a")
	withTemp := filepath.Join(root, "b")
	nested := filepath.Join(root, "p", "data")
	empty := filepath.Join(root, "empty")
	foreign := filepath.Join(root, "foreign")
	leased := filepath.Join(root, "leased")
	locked := filepath.Join(root, "locked")
	for _, d := range []string{lockOnly, withTemp, nested, foreign, leased, locked} {
		writeFile(t, filepath.Join(d, state.LockFileName), "")
	}
	writeFile(t, filepath.Join(withTemp, "state-1.json.tmp"), "{")
	writeFile(t, filepath.Join(foreign, "notes"), "mine")
	mkdir(t, empty)
	lease := startHelper(t, "lease", leased, "ready")
	lock := startHelper(t, "lock", locked, "ready")

	collect(t, root)
	mustNotExist(t, lockOnly, withTemp, filepath.Dir(nested))
	mustExist(t, empty, filepath.Join(foreign, state.LockFileName), filepath.Join(foreign, "notes"),
		filepath.Join(leased, state.LockFileName), filepath.Join(locked, state.LockFileName))

	lease.Kill()
	lock.Kill()
	collect(t, root)
	mustNotExist(t, leased, locked)
}

// TestVMsNamedLikeOwnEntries: a VM directory named cache or rootfs-work
// is found wherever it is not a data directory's own entry; inside a data
// directory those names stay unentered.
func TestVMsNamedLikeOwnEntries(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	for _, rel := range []string{"cache", "rootfs-work", "team/cache", "team/rootfs-work"} {
		makeVM(t, filepath.Join(root, rel), orphanState())
	}
	live := filepath.Join(root, "live")
	smallVM(t, live, orphanState())
	writeJSON(t, filepath.Join(live, "cache"), orphanState())
	writeJSON(t, filepath.Join(live, rootfsWorkName, "x"), orphanState())
	startHelper(t, "lease", live, "ready")
	rep := collect(t, root)
	if len(rep.Reclaimed) != 4 || len(rep.Errors) != 0 {
		t.Fatalf("reclaimed %+v, errors %v; want the four VMs", rep.Reclaimed, rep.Errors)
	}
	if len(rep.Kept) != 1 || rep.Kept[0].Path != live {
		t.Errorf("kept %+v; want only the live VM, nothing inside it", rep.Kept)
	}
	mustExist(t, filepath.Join(live, "cache", state.FileName), filepath.Join(live, rootfsWorkName, "x", state.FileName))
}

// TestConcurrentDeleterNotError: an embedder's own cleanup deleting the
// orphans while the collector reclaims them is no error: what it removed
// is gone, as the collector wanted. The deleter, a real rm process, starts
// from the reclaim hook, so it certainly runs after the scan saw the
// orphans and before or while Collect reclaims them: half the rounds
// wait for rm in the hook (every orphan is gone or gutted before Collect
// locks it), half let it race the removals.
func TestConcurrentDeleterNotError(t *testing.T) {
	t.Parallel()
	rm, err := exec.LookPath("rm")
	if err != nil {
		t.Skip("no rm")
	}
	for round := range testproc.Size(4, 20) {
		root := filepath.Join(t.TempDir(), "root")
		var dirs []string
		for i := range 8 {
			dir := filepath.Join(root, fmt.Sprintf("vm%02d", i))
			makeVM(t, dir, orphanState())
			for j := range testproc.Size(15, 30) {
				writeFile(t, filepath.Join(dir, rootfsWorkName, "d", fmt.Sprint(j), "f"), "x")
			}
			dirs = append(dirs, dir)
		}
		// Odd rounds delete the whole directories, even ones only the
		// rootfs-work trees (as an embedder's clean-up of the clone).
		args := []string{"-rf"}
		for _, d := range dirs {
			if round%2 == 1 {
				d = filepath.Join(d, rootfsWorkName)
			}
			args = append(args, d)
		}
		wait := round/2%2 == 0
		other := exec.Command(rm, args...)
		var once sync.Once
		started := false
		start := hooks{reclaim: func(string) {
			once.Do(func() {
				if err := other.Start(); err != nil {
					t.Error(err)
					return
				}
				started = true
				if wait {
					_ = other.Wait()
				}
			})
		}}
		rep := collect(t, root, withHooks(start))
		if !started {
			t.Fatalf("round %d: the deleter did not start during the collection", round)
		}
		if !wait {
			_ = other.Wait()
		}
		if len(rep.Errors) != 0 {
			t.Fatalf("round %d: errors %v; a concurrent deletion is not one", round, rep.Errors)
		}
		// What the scan saw is reclaimed, by one or the other.
		if len(rep.Kept) != 0 || len(rep.Reclaimed) != len(dirs) {
			t.Errorf("round %d: kept %+v, %d reclaimed; want every orphan the scan saw reclaimed", round, rep.Kept, len(rep.Reclaimed))
		}
		// Whatever rm left of go-microvm's files, the next run reclaims.
		rep = collect(t, root)
		if len(rep.Errors) != 0 || len(rep.Kept) != 0 {
			t.Fatalf("round %d, second run: %+v", round, rep)
		}
		for _, d := range dirs {
			mustNotExist(t, filepath.Join(d, state.FileName))
		}
		if _, err := os.Lstat(filepath.Join(root, TrashName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("round %d: trash left: %v", round, err)
		}
	}
}

// TestNoLockOrTrashLeftInEmptyRoot: a collection over a root that holds
// no data directory (a home directory, say, or a VM's parent) leaves
// neither the lock file nor a trash; one over a root with a live VM keeps
// its lock file.
func TestNoLockOrTrashLeftInEmptyRoot(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	notes := filepath.Join(root, "notes")
	writeFile(t, filepath.Join(notes, "todo.txt"), "mine")
	before := snapshot(t, notes)
	for range 2 {
		collect(t, root)
		sameSnapshot(t, "root without data directories", before, snapshot(t, notes))
		if entries, err := os.ReadDir(root); err != nil || len(entries) != 1 {
			t.Errorf("root holds %v, %v; want only notes", entries, err)
		}
	}
	// A root whose only orphan is reclaimed is left without them too.
	makeVM(t, filepath.Join(root, "vm"), orphanState())
	collect(t, root)
	mustNotExist(t, filepath.Join(root, "vm"), filepath.Join(root, LockName()), filepath.Join(root, TrashName))
	live := filepath.Join(root, "live")
	smallVM(t, live, orphanState())
	startHelper(t, "lease", live, "ready")
	collect(t, root)
	mustExist(t, filepath.Join(root, LockName()))
}

// TestRootLockRemovalKeepsOneCollector: collectors that take the root lock
// and remove its file before releasing it, as a collection of an empty
// root does, never hold it two at a time: one that locked a file unlinked
// meanwhile starts over on the new one.
func TestRootLockRemovalKeepsOneCollector(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	holder := filepath.Join(root, "holder")
	var wg sync.WaitGroup
	var taken, overlaps atomic.Int64
	for range 4 {
		wg.Go(func() {
			for range 300 {
				fd, err := lockRoot(dir, root)
				if errors.Is(err, ErrBusy) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				taken.Add(1)
				// The work under the lock, then, as its last act, the
				// removal of the lock file (collector.dropLock).
				f, err := os.OpenFile(holder, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
				if err != nil {
					overlaps.Add(1)
				} else {
					f.Close()
					os.Remove(holder)
				}
				_ = unix.Unlinkat(int(dir.Fd()), LockName(), 0)
				unix.Close(fd)
			}
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Errorf("%d of %d lock holds overlapped another", overlaps.Load(), taken.Load())
	}
	if taken.Load() == 0 {
		t.Error("no collector ever took the lock")
	}
	mustNotExist(t, filepath.Join(root, LockName()))
}

// TestRootLockFreeWithCopyLeft: a copy of the root lock's descriptor that
// outlives Collect, as a child process forked meanwhile by another
// goroutine holds one until it execs, does not keep the root locked: the
// next Collect is not busy.
func TestRootLockFreeWithCopyLeft(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	// A stopped VM is kept, and with it the lock file.
	smallVM(t, filepath.Join(root, "vm"), &state.State{Version: 1, Name: "stopped"})
	var copied atomic.Bool
	collect(t, root, WithProgress(func(Progress) {
		if copied.Swap(true) {
			return
		}
		var lock unix.Stat_t
		if err := unix.Stat(filepath.Join(root, LockName()), &lock); err != nil {
			t.Error(err)
			return
		}
		for fd := range 1024 {
			var st unix.Stat_t
			if unix.Fstat(fd, &st) == nil && st.Dev == lock.Dev && st.Ino == lock.Ino {
				dup, err := unix.Dup(fd)
				if err != nil {
					t.Error(err)
					return
				}
				t.Cleanup(func() { unix.Close(dup) })
				return
			}
		}
		t.Error("no descriptor of the root lock while Collect runs")
	}))
	collect(t, root)
}

// TestDataDirWithIdleLockRemoved: a collection over a data directory
// itself (runner.NewClaim's default root) that kept it there leaves its
// lock file in it; once the directory is an orphan, a collection of the
// root above removes that idle lock too, and with it the directory.
func TestDataDirWithIdleLockRemoved(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	dir := filepath.Join(root, "vm")
	smallVM(t, dir, &state.State{Version: 1, Name: "stopped"})
	collect(t, dir)
	mustExist(t, filepath.Join(dir, LockName()))
	writeJSON(t, dir, orphanState())
	rep := collect(t, root)
	if len(rep.Reclaimed) != 1 {
		t.Fatalf("reclaimed %+v", rep.Reclaimed)
	}
	mustNotExist(t, dir)
}

// TestRemnantMadeIntoVM: a remnant that a released microvm.Run (no lease)
// starts to fill after the collector listed it keeps what Run made: only
// the listed files go, and the directory stays.
func TestRemnantMadeIntoVM(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	d := filepath.Join(root, "vm")
	writeFile(t, filepath.Join(d, state.LockFileName), "")
	writeFile(t, filepath.Join(d, "state-1.json.tmp"), "{")
	clone := filepath.Join(d, rootfsWorkName, "guest-file")
	rep, err := Collect(root, withHooks(hooks{locked: func(path string) {
		if path == d {
			writeFile(t, clone, "x")
		}
	}}))
	if err != nil || len(rep.Errors) != 0 {
		t.Fatalf("Collect: %v, errors %v", err, rep.Errors)
	}
	mustExist(t, clone)
	mustNotExist(t, filepath.Join(d, "state-1.json.tmp"))
}

// TestRemnantBytes: a remnant's saves count in BytesFreed; a directory
// holding a "save" that is not a regular file is not go-microvm's remnant
// and stays whole.
func TestRemnantBytes(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	saves, odd := filepath.Join(root, "saves"), filepath.Join(root, "odd")
	var want int64
	for i := range 4 {
		p := filepath.Join(saves, fmt.Sprintf("state-%d.json.tmp", i))
		writeFile(t, p, strings.Repeat("x", 64<<10))
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		want += st.Blocks * 512
	}
	for _, d := range []string{saves, odd} {
		writeFile(t, filepath.Join(d, state.LockFileName), "")
	}
	writeFile(t, filepath.Join(odd, "state-1.json.tmp"), "{")
	mkdir(t, filepath.Join(odd, "state-dir.json.tmp"))
	rep := collect(t, root)
	if rep.BytesFreed != want {
		t.Errorf("BytesFreed %d, want the saves' %d", rep.BytesFreed, want)
	}
	mustNotExist(t, saves)
	mustExist(t, filepath.Join(odd, state.LockFileName), filepath.Join(odd, "state-1.json.tmp"), filepath.Join(odd, "state-dir.json.tmp"))
}
