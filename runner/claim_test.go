// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/claim"
	"github.com/stacklok/go-microvm/internal/hangtest"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// makeOrphan leaves at dir what an embedder killed mid-clone leaves: the
// marker set, no lease held, a rootfs.
func makeOrphan(t *testing.T, dir string) {
	t.Helper()
	writeState(t, dir, func(st *state.State) { st.Leased = true; st.Name = "orphan" })
	if err := makeRootfs(dir); err != nil {
		t.Fatal(err)
	}
}

// newClaimWithGuard runs NewClaim, failing if it hangs.
func newClaimWithGuard(t *testing.T, dir string, opts ...ClaimOption) (*Claim, error) {
	t.Helper()
	c, err := hangtest.Within(t, guard, "NewClaim", func() (*Claim, error) {
		return NewClaim(context.Background(), dir, opts...)
	})
	if c != nil {
		t.Cleanup(func() { _ = c.Abort() })
	}
	return c, err
}

// The claim's collection reclaims an orphan sibling before the new VM's
// clone begins.
func TestClaimCollectsOrphanSibling(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	orphan := filepath.Join(root, "old")
	makeOrphan(t, orphan)
	c, err := newClaimWithGuard(t, filepath.Join(root, "new"), WithCollectRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(orphan, "rootfs-work")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan's rootfs-work after the claim: %v", err)
	}
	if st := loadState(t, c.Dir()); !st.Leased || st.Active {
		t.Fatalf("claimed state: %+v", st)
	}
}

// By default the claim collects only its own data directory: in the
// single-VM layout ~/.config/go-microvm, an orphan left there is
// reclaimed, while ~/.config is neither swept nor given a lock file or
// trash, and what looks like a crashed VM beside it keeps its files.
func TestClaimDefaultRootIsDataDir(t *testing.T) {
	t.Parallel()
	config := filepath.Join(t.TempDir(), ".config")
	dir := filepath.Join(config, "go-microvm")
	makeOrphan(t, dir)
	if err := os.MkdirAll(filepath.Join(dir, "cache", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(config, "otherapp")
	makeOrphan(t, stray)
	for _, f := range []string{"console.log", "vm.log"} {
		if err := os.WriteFile(filepath.Join(stray, f), []byte("otherapp's"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := newClaimWithGuard(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "rootfs-work")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the orphan left in the data directory: %v, want reclaimed", err)
	}
	for _, p := range []string{"rootfs-work", "console.log", "vm.log", state.FileName} {
		if _, err := os.Lstat(filepath.Join(stray, p)); err != nil {
			t.Errorf("beside the data directory: %v", err)
		}
	}
	for _, p := range []string{filepath.Join(config, gc.LockName()), filepath.Join(config, gc.TrashName), filepath.Join(dir, "cache", "sha256")} {
		_, err := os.Lstat(p)
		if want := p == filepath.Join(dir, "cache", "sha256"); (err == nil) != want {
			t.Errorf("%s: %v", p, err)
		}
	}
	if st := loadState(t, c.Dir()); !st.Leased {
		t.Errorf("claimed state: %+v", st)
	}
}

// The claim does not wait for another collector: it skips the collection
// while the root lock is held by another process.
func TestClaimSkipsBusyCollector(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	orphan := filepath.Join(root, "old")
	makeOrphan(t, orphan)
	startHelper(t, "gclock", "ROOT="+root)
	if _, err := newClaimWithGuard(t, filepath.Join(root, "new"), WithCollectRoot(root)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(orphan, "rootfs-work")); err != nil {
		t.Fatalf("the claim collected while another collector held the root: %v", err)
	}
}

// A claim (here under a root that does not exist yet) sets the marker and
// records what it is told; Abort clears the marker, frees the lease and
// ends the claim.
func TestClaimAbort(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "vm")
	c, err := newClaimWithGuard(t, dir, WithName("web"), WithImage("alpine:3"), WithResources(2, 256))
	if err != nil {
		t.Fatal(err)
	}
	st := loadState(t, dir)
	if !st.Leased || st.Active || st.Name != "web" || st.Image != "alpine:3" || st.CPUs != 2 || st.MemoryMB != 256 ||
		st.Version != state.CurrentVersion || st.CreatedAt.IsZero() {
		t.Fatalf("claimed state: %+v", st)
	}
	if !leaseHeld(t, dir) {
		t.Fatal("claim holds no lease")
	}
	if err := c.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := c.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if !leaseFreed(t, dir) {
		t.Fatal("lease held after Abort")
	}
	if st := loadState(t, dir); st.Leased || st.Active {
		t.Fatalf("state after Abort: %+v", st)
	}
	if _, err := c.Spawn(testCtx(t), Config{RootPath: dir, RunnerPath: standinPath}); !errors.Is(err, ErrClaimDone) {
		t.Fatalf("Spawn after Abort: %v, want ErrClaimDone", err)
	}
}

// A data directory in use by a live run cannot be claimed: a leased run,
// or a released runner that holds no lease.
func TestClaimInUse(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "vm")
	if _, err := newClaimWithGuard(t, dir, WithoutCollect()); err != nil {
		t.Fatal(err)
	}
	if _, err := newClaimWithGuard(t, dir, WithoutCollect(), WithLeaseTimeout(50*time.Millisecond)); !errors.Is(err, ErrInUse) {
		t.Fatalf("second claim: %v, want ErrInUse", err)
	}

	released := t.TempDir()
	p, err := SpawnProcess(testCtx(t), Config{RootPath: t.TempDir(), RunnerPath: standinPath})
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, p.PID())
	t.Cleanup(func() { _ = p.Stop(testCtx(t)) })
	writeState(t, released, func(st *state.State) { st.Active, st.PID, st.PIDStartTime = true, p.PID(), time.Now() })
	if _, err := newClaimWithGuard(t, released, WithoutCollect()); !errors.Is(err, ErrInUse) {
		t.Fatalf("claim over a live released runner: %v, want ErrInUse", err)
	}
	if !leaseFreed(t, released) {
		t.Fatal("failed claim left the lease held")
	}
}

// Spawn records the runner's exact identity and hands it the lease; the
// embedder's copy is dropped.
func TestClaimSpawnRecordsIdentity(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "vm")
	log := filepath.Join(t.TempDir(), "vm.log")
	if err := os.WriteFile(log, []byte("earlier run\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := newClaimWithGuard(t, dir, WithoutCollect())
	if err != nil {
		t.Fatal(err)
	}
	if err := makeRootfs(dir); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	p, err := c.Spawn(testCtx(t), Config{
		RootPath: filepath.Join(dir, "rootfs-work"), NumVCPUs: 3, RAMMiB: 768,
		RunnerPath: standinPath, VMLogPath: log, Env: []string{"STANDIN_READY=" + ready},
	})
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, p.PID())
	t.Cleanup(func() { _ = p.Stop(testCtx(t)) })
	readReady(t, ready)

	info, err := procinfo.Lookup(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	boot, _ := procinfo.BootID()
	exe, _ := filepath.EvalSymlinks(standinPath)
	st := loadState(t, dir)
	ns, err := procinfo.CurrentPIDNamespace()
	if err != nil {
		t.Fatal(err)
	}
	want := state.Identity{StartTime: info.StartTime, BootID: boot, Executable: exe, PIDNamespace: ns.Inode}
	if !st.Active || !st.Leased || st.PID != p.PID() || st.Runner == nil || *st.Runner != want ||
		st.PIDStartTime.IsZero() || st.CPUs != 3 || st.MemoryMB != 768 {
		t.Fatalf("state after Spawn: %+v runner %+v, want runner %+v", st, st.Runner, want)
	}
	if !leaseHeld(t, dir) {
		t.Fatal("the runner holds no lease")
	}
	if _, err := c.Spawn(testCtx(t), Config{RootPath: dir, RunnerPath: standinPath}); !errors.Is(err, ErrClaimDone) {
		t.Fatalf("second Spawn: %v, want ErrClaimDone", err)
	}
	if err := c.Abort(); err != nil {
		t.Fatalf("Abort after Spawn: %v", err)
	}
	if st := loadState(t, dir); !st.Leased || !st.Active {
		t.Fatalf("Abort after Spawn changed the state: %+v", st)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if want := "earlier run\ngo-microvm-runner stand-in: pid "; len(data) < len(want) || string(data[:len(want)]) != want {
		t.Fatalf("vm log %q: want the earlier run kept and the runner's output appended", data)
	}
}

// A data directory that a collector removes between its creation and the
// lease is created again, and the claim goes on.
func TestClaimRecreatesVanishedDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "vm")
	removals := 0
	beforeLease := func(d string) {
		if removals < 2 {
			removals++
			if err := os.Remove(d); err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := newClaimWithGuard(t, dir, WithoutCollect(), withHooks(hooks{beforeLease: beforeLease})); err != nil {
		t.Fatal(err)
	}
	if removals != 2 || !leaseHeld(t, dir) || !loadState(t, dir).Leased {
		t.Fatalf("after %d removals: claim holds no lease or marker", removals)
	}
}

// A data directory removed or replaced between the lease and the run
// marker is claimed again: the marker lands only in the directory the
// path names, under a lease on that same directory, and never in the
// directory the first lease was on.
func TestClaimDirReplacedAfterLease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		replace bool // create a fresh directory at the path, else leave it gone
		times   int  // how many leases see their directory go
		wantErr error
	}{
		{name: "replaced once", replace: true, times: 1},
		{name: "removed once", times: 1},
		{name: "replaced every time", replace: true, times: claim.MaxRetries + 1, wantErr: ErrClaimLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vm")
			var old []string
			leased := func(d string) {
				if len(old) == tt.times {
					return
				}
				moved := fmt.Sprintf("%s.old%d", d, len(old))
				if err := os.Rename(d, moved); err != nil {
					t.Error(err)
				}
				old = append(old, moved)
				if tt.replace {
					if err := os.Mkdir(d, 0o700); err != nil {
						t.Error(err)
					}
				}
			}
			c, err := newClaimWithGuard(t, dir, WithoutCollect(), withHooks(hooks{leased: leased}))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewClaim: %v, want %v", err, tt.wantErr)
			}
			if len(old) != tt.times {
				t.Fatalf("directory replaced %d times, want %d", len(old), tt.times)
			}
			for _, o := range old {
				if !leaseFreed(t, o) {
					t.Errorf("lease on the replaced directory %s still held", o)
				}
				if _, err := os.Lstat(filepath.Join(o, state.FileName)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("replaced directory %s got a state file: %v", o, err)
				}
			}
			if tt.wantErr != nil {
				if !leaseFreed(t, dir) {
					t.Error("lease held after a failed claim")
				}
				if _, err := os.Lstat(filepath.Join(dir, state.FileName)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("failed claim wrote a state file: %v", err)
				}
				return
			}
			if err := claim.Check(c.lease, dir); err != nil {
				t.Errorf("claim's lease is not on the directory the path names: %v", err)
			}
			if !leaseHeld(t, dir) || !loadState(t, dir).Leased {
				t.Error("directory at the path has no lease or no marker")
			}
		})
	}
}

// A collector removing the empty parent inside MkdirAll (after it made
// the parent, before it made the data directory) fails MkdirAll with
// ENOENT; the claim creates both again.
func TestClaimParentRemovedInsideMkdirAll(t *testing.T) {
	t.Parallel()
	parent := filepath.Join(t.TempDir(), "vm")
	dir := filepath.Join(parent, "data")
	calls := 0
	mkdirAll := func(path string, perm os.FileMode) error {
		calls++
		if calls > 1 {
			return os.MkdirAll(path, perm)
		}
		if err := os.MkdirAll(filepath.Dir(path), perm); err != nil {
			return err
		}
		if err := os.Remove(filepath.Dir(path)); err != nil {
			return err
		}
		err := os.Mkdir(path, perm)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("mkdir under a removed parent: %v, want ENOENT", err)
		}
		return err
	}
	if _, err := newClaimWithGuard(t, dir, WithoutCollect(), withHooks(hooks{mkdirAll: mkdirAll})); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || !leaseHeld(t, dir) || !loadState(t, dir).Leased {
		t.Fatalf("after %d MkdirAll calls: claim holds no lease or marker", calls)
	}
}

// A data directory removed or replaced between NewClaim and Spawn loses
// the claim: nothing is started, nothing is written at the path, no
// directory is created, the lease is dropped and the claim is used up.
func TestSpawnClaimLost(t *testing.T) {
	t.Parallel()
	for _, replace := range []bool{true, false} {
		t.Run(fmt.Sprintf("replace=%v", replace), func(t *testing.T) {
			ctx := testCtx(t)
			dir := filepath.Join(t.TempDir(), "vm")
			started := func(pid int) {
				t.Errorf("runner pid %d started for a lost claim", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			c, err := newClaimWithGuard(t, dir, WithoutCollect(), withHooks(hooks{started: started}))
			if err != nil {
				t.Fatal(err)
			}
			if err := makeRootfs(dir); err != nil {
				t.Fatal(err)
			}
			old := dir + ".old"
			if err := os.Rename(dir, old); err != nil {
				t.Fatal(err)
			}
			if replace {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			cfg := Config{RootPath: filepath.Join(dir, "rootfs-work"), RunnerPath: standinPath}
			if _, err := c.Spawn(ctx, cfg); !errors.Is(err, ErrClaimLost) {
				t.Fatalf("Spawn: %v, want ErrClaimLost", err)
			}
			if !leaseFreed(t, old) {
				t.Error("lease on the lost directory still held")
			}
			if !loadState(t, old).Leased {
				t.Error("lost directory lost its marker: it would not read as an orphan")
			}
			_, err = os.Lstat(filepath.Join(dir, state.FileName))
			if replace && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Spawn wrote a state file into the new directory: %v", err)
			}
			if _, err := os.Lstat(dir); !replace && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Spawn created the removed directory again: %v", err)
			}
			if _, err := c.Spawn(ctx, cfg); !errors.Is(err, ErrClaimDone) {
				t.Errorf("second Spawn: %v, want ErrClaimDone", err)
			}
			if err := c.Abort(); err != nil {
				t.Errorf("Abort of a lost claim: %v", err)
			}
		})
	}
}

// Abort of a claim whose directory was removed creates nothing.
func TestAbortDirRemoved(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "vm")
	c, err := newClaimWithGuard(t, dir, WithoutCollect())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := c.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Abort created the removed directory again: %v", err)
	}
}

// An error of the claim's collection is warned about once, under the key
// "error", and counted in the summary.
func TestClaimLogsCollectionErrorOnce(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	makeOrphan(t, filepath.Join(root, "old"))
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, err := newClaimWithGuard(t, filepath.Join(root, "new"), WithCollectRoot(root), WithLogger(logger),
		WithCollectOptions(gc.WithKeep(func(string) bool { panic("embedder bug") })))
	if err != nil {
		t.Fatal(err)
	}
	var errLines []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "keep function did not return") {
			errLines = append(errLines, line)
		}
	}
	if len(errLines) != 1 || !strings.Contains(errLines[0], " error=") {
		t.Errorf("log lines naming the collection's error = %q, want one, with key error; log:\n%s", errLines, buf.String())
	}
	if strings.Contains(buf.String(), " err=") {
		t.Errorf("log uses the key err; want error:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), "errors=1") {
		t.Errorf("summary does not count the error; log:\n%s", buf.String())
	}
}
