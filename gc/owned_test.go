// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/state"
)

// bboxVM lays out one VM the way brood-box does: vms/<name>/ holds its
// sentinel and log, and data/ is go-microvm's data directory, with the
// per-session image cache and brood-box's firmware reference inside.
func bboxVM(t *testing.T, vms, name string, s *state.State) (vmDir, dataDir string) {
	t.Helper()
	vmDir = filepath.Join(vms, name)
	dataDir = filepath.Join(vmDir, "data")
	makeVM(t, dataDir, s)
	writeFile(t, filepath.Join(vmDir, ".bbox-sentinel"), fmt.Sprintf("%d\n/usr/bin/bbox", 999999))
	writeFile(t, filepath.Join(vmDir, "broodbox.log"), strings.Repeat("log line\n", 100))
	writeFile(t, filepath.Join(dataDir, "cache", "blobs", "sha256", "abc"), strings.Repeat("z", 30000))
	writeFile(t, filepath.Join(dataDir, "firmware.ref.json"), "{}")
	return vmDir, dataDir
}

// One Collect with brood-box's owned names, WithStopped and its veto leaves
// no trace of its crashed and stopped VMs, and leaves whole its live and
// vetoed VMs, a VM whose directory holds a file it does not own, and
// everything else in the root.
func TestBroodBoxSweep(t *testing.T) {
	t.Parallel()
	vms := t.TempDir()
	old := time.Now().Add(-time.Hour)

	crashed, _ := bboxVM(t, vms, "crashed", orphanState())
	// Booted before it crashed: a console.log over brood-box's 4 KiB cap.
	booted, bootedData := bboxVM(t, vms, "booted", orphanState())
	writeFile(t, filepath.Join(bootedData, consoleLogName), strings.Repeat("boot\n", 2000))
	// Killed mid-clone: marker set, no runner ever recorded.
	cloning, cloningData := bboxVM(t, vms, "cloning", &state.State{Version: 1, Active: true, CreatedAt: old, Leased: true})
	writeFile(t, filepath.Join(cloningData, rootfsWorkName, "half"), "x")
	stopped, _ := bboxVM(t, vms, "stopped", &state.State{Version: 1, Name: "stopped", CreatedAt: old})
	// Owned names that are symlinks are unlinked, their targets kept.
	outside := filepath.Join(t.TempDir(), "precious")
	writeFile(t, filepath.Join(outside, "file"), "keep me")
	linked, linkedData := bboxVM(t, vms, "linked", orphanState())
	for _, p := range []string{filepath.Join(linked, "broodbox.log"), filepath.Join(linkedData, "cache")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, p); err != nil {
			t.Fatal(err)
		}
	}

	live, liveData := bboxVM(t, vms, "live", orphanState())
	startHelper(t, "lease", liveData, "ready")
	vetoed, vetoedData := bboxVM(t, vms, "vetoed", orphanState())
	// A VM directory that also holds a file brood-box does not own: the
	// VM goes, the directory and everything in it stays.
	shared, sharedData := bboxVM(t, vms, "shared", orphanState())
	writeFile(t, filepath.Join(shared, "notes.txt"), "mine")
	writeFile(t, filepath.Join(vms, "README"), "a foreign file in the root")
	writeFile(t, filepath.Join(vms, "other", "broodbox.log"), "not brood-box's session: no sentinel, no state")

	keepSnap := map[string]map[string]string{}
	for _, d := range []string{live, vetoed, outside, filepath.Join(vms, "other"), filepath.Join(vms, "README")} {
		keepSnap[d] = snapshot(t, d)
	}

	// The veto runs concurrently for different directories.
	var mu sync.Mutex
	var asked []string
	bbox := bboxKeep(vms, "")
	rep := collect(t, vms,
		WithOwnedNames(bboxOwned...),
		WithStopped(0),
		WithKeep(func(dataDir string) bool {
			mu.Lock()
			asked = append(asked, dataDir)
			mu.Unlock()
			return dataDir == vetoedData || bbox(dataDir)
		}),
	)

	mustNotExist(t, crashed, booted, cloning, stopped, linked, sharedData, filepath.Join(vms, TrashName))
	mustExist(t, filepath.Join(shared, ".bbox-sentinel"), filepath.Join(shared, "broodbox.log"), filepath.Join(shared, "notes.txt"))
	for d, before := range keepSnap {
		sameSnapshot(t, d, before, snapshot(t, d))
	}
	if len(rep.Reclaimed) != 6 {
		t.Errorf("reclaimed %d, want 6 (crashed, booted, cloning, stopped, linked, shared): %+v", len(rep.Reclaimed), rep.Reclaimed)
	}
	kept := map[string]Candidate{}
	for _, k := range rep.Kept {
		kept[k.Path] = k
	}
	if k := kept[vetoedData]; k.Reason != ReasonEmbedderKeep || k.Class != ClassLive {
		t.Errorf("vetoed VM kept as %s/%s, want live/%s", k.Class, k.Reason, ReasonEmbedderKeep)
	}
	if k := kept[liveData]; k.Class != ClassLive || k.Reason != ReasonLeaseHeld {
		t.Errorf("live VM kept as %s/%s, want live/%s", k.Class, k.Reason, ReasonLeaseHeld)
	}
	for _, d := range asked {
		if d == liveData {
			t.Errorf("the veto was asked about the live VM, which the lease already keeps")
		}
	}
}

// Without WithOwnedNames only go-microvm's own entries go: the data
// directory keeps the embedder's files, and so does its parent.
func TestOwnedNamesDefault(t *testing.T) {
	t.Parallel()
	vms := t.TempDir()
	vm, data := bboxVM(t, vms, "crashed", orphanState())
	collect(t, vms)
	mustNotExist(t, filepath.Join(data, rootfsWorkName), filepath.Join(data, state.FileName))
	mustExist(t, filepath.Join(vm, ".bbox-sentinel"), filepath.Join(vm, "broodbox.log"),
		filepath.Join(data, "cache", "blobs", "sha256", "abc"), filepath.Join(data, "firmware.ref.json"))
}

// Names that are not one component, or are go-microvm's or the
// collector's own, are never owned: an embedder cannot make the state
// file go before rootfs-work, nor a path reach out of the directory.
func TestOwnedNamesInvalid(t *testing.T) {
	t.Parallel()
	o := newOptions([]Option{WithOwnedNames("", ".", "..", "a/b", "../x", state.FileName, state.LockFileName,
		rootfsWorkName, "state-1.json.tmp", consoleLogName, TrashName, LockName(), "ok")})
	if len(o.owned) != 1 || o.owned[0] != "ok" {
		t.Fatalf("owned names kept: %q, want only \"ok\"", o.owned)
	}
	vms := t.TempDir()
	vm, _ := bboxVM(t, vms, "crashed", orphanState())
	writeFile(t, filepath.Join(filepath.Dir(vms), "x"), "outside")
	collect(t, vms, WithOwnedNames("..", "../x", "data/../../x"))
	mustExist(t, filepath.Join(filepath.Dir(vms), "x"), filepath.Join(vm, ".bbox-sentinel"))
}

// A veto that panics keeps the directory, is reported, and the sweep goes
// on with the others.
func TestKeepPanics(t *testing.T) {
	t.Parallel()
	vms := t.TempDir()
	_, boom := bboxVM(t, vms, "boom", orphanState())
	other, _ := bboxVM(t, vms, "other", orphanState())
	rep, err := Collect(vms, WithOwnedNames(bboxOwned...), WithKeep(func(dataDir string) bool {
		if dataDir == boom {
			panic("embedder bug")
		}
		return false
	}))
	if err != nil {
		t.Fatal(err)
	}
	mustExist(t, filepath.Join(boom, state.FileName), filepath.Join(boom, rootfsWorkName))
	mustNotExist(t, other)
	if len(rep.Errors) != 1 || rep.Errors[0].Path != boom || !errors.Is(rep.Errors[0], errKeepFailed) {
		t.Fatalf("errors = %v, want the panic reported for %s", rep.Errors, boom)
	}
	var reportErr error = rep.Errors[0]
	var pathErr *fs.PathError
	if !errors.As(reportErr, &pathErr) || pathErr.Op != "ask keep" || pathErr.Path != boom {
		t.Errorf("errors.As(%v) = %+v, want Op %q, Path %s", reportErr, pathErr, "ask keep", boom)
	}
	if len(rep.Kept) != 1 || rep.Kept[0].Reason != ReasonEmbedderKeep {
		t.Errorf("kept = %+v, want %s kept with %s", rep.Kept, boom, ReasonEmbedderKeep)
	}
}

// A veto that ends its goroutine (runtime.Goexit, as t.FailNow does)
// keeps its directory, is reported, and Collect returns with the root
// unlocked: the next Collect is not busy and reclaims it. Every reclaiming
// goroutine meets such a veto, so none would be left to finish the sweep.
func TestKeepGoexit(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	names := []string{"a", "b", "c", "d"}
	for _, name := range names {
		makeVM(t, filepath.Join(root, name), orphanState())
	}
	rep, err := noHang(t, "Collect with a veto calling runtime.Goexit", nil, func() (*Report, error) {
		return Collect(root, WithKeep(func(string) bool {
			runtime.Goexit()
			return false
		}))
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Kept) != len(names) || len(rep.Errors) != len(names) || len(rep.Reclaimed) != 0 {
		t.Fatalf("kept %+v, errors %v, reclaimed %+v; want all kept, each reported", rep.Kept, rep.Errors, rep.Reclaimed)
	}
	for i, k := range rep.Kept {
		if k.Reason != ReasonEmbedderKeep || !errors.Is(rep.Errors[i], errKeepFailed) || rep.Errors[i].Path != k.Path {
			t.Errorf("kept %+v with error %v; want %s and the Goexit reported", k, rep.Errors[i], ReasonEmbedderKeep)
		}
		mustExist(t, filepath.Join(k.Path, state.FileName), filepath.Join(k.Path, rootfsWorkName))
	}
	if rep = collect(t, root); len(rep.Reclaimed) != len(names) {
		t.Errorf("second run reclaimed %+v, want all", rep.Reclaimed)
	}
}

// A sibling that holds a state file is another VM's data directory, never
// an owned entry: with "cache" owned (the README's example), the orphan
// root/proj/data is reclaimed and root/proj/cache stays whole, whatever
// its own verdict.
func TestOwnedNameSiblingDataDir(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		state func(t *testing.T, dir string)
		class Class
	}{
		{"stopped", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1, Name: "cache", CreatedAt: time.Now()})
		}, ClassStopped},
		{"unknown", func(t *testing.T, dir string) {
			makeVM(t, dir, &state.State{Version: 1, Active: true, Name: "cache", CreatedAt: time.Now()})
		}, ClassUnknown},
		{"unreadable", func(t *testing.T, dir string) {
			makeVM(t, dir, orphanState())
			writeFile(t, filepath.Join(dir, state.FileName), "{not json")
		}, ClassUnreadable},
		{"vetoed", func(t *testing.T, dir string) { makeVM(t, dir, orphanState()) }, ClassLive},
		{"live", func(t *testing.T, dir string) {
			makeVM(t, dir, orphanState())
			startHelper(t, "lease", dir, "ready")
		}, ClassLive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			proj := filepath.Join(root, "proj")
			data, cache := filepath.Join(proj, "data"), filepath.Join(proj, "cache")
			makeVM(t, data, orphanState())
			writeFile(t, filepath.Join(proj, "notes"), "the embedder's")
			tc.state(t, cache)
			before := snapshot(t, cache)

			rep := collect(t, root, WithOwnedNames("cache", "notes"),
				WithKeep(func(dir string) bool { return dir == cache }))

			mustNotExist(t, data)
			mustExist(t, filepath.Join(proj, "notes"))
			sameSnapshot(t, cache, before, snapshot(t, cache))
			if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != data {
				t.Errorf("reclaimed %+v, want only %s", rep.Reclaimed, data)
			}
			if len(rep.Kept) != 1 || rep.Kept[0].Path != cache || rep.Kept[0].Class != tc.class {
				t.Errorf("kept %+v, want %s kept as %s", rep.Kept, cache, tc.class)
			}
		})
	}
}

// A directory below root that holds only owned entries (and no data
// directory) is the embedder's leftovers: a candidate, the outermost one
// only, found down to the depth. Without a veto nothing can tell whether
// the embedder still uses it: kept, and not an orphan.
func TestLeftoverWithoutVeto(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "sess", "app.log"), "log")
	writeFile(t, filepath.Join(root, "sess", "data", "cache", "blob"), "layer")
	writeFile(t, filepath.Join(root, "deep", "x", "app.log"), "log") // x: at the depth
	writeFile(t, filepath.Join(root, "mixed", "app.log"), "log")     // not only owned
	writeFile(t, filepath.Join(root, "mixed", "notes"), "mine")
	mkdir(t, filepath.Join(root, "empty"))
	writeFile(t, filepath.Join(root, "locked", LockName()), "") // an idle lock is not the embedder's
	writeFile(t, filepath.Join(root, "app.log"), "root is never a leftover")
	owned := WithOwnedNames("app.log", "data", "cache")

	cands, err := Scan(root, owned)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cands {
		got = append(got, c.Path)
		if c.Class != ClassUnknown || c.Reason != ReasonNoVeto {
			t.Errorf("%s: %s/%s, want %s/%s", c.Path, c.Class, c.Reason, ClassUnknown, ReasonNoVeto)
		}
	}
	want := []string{filepath.Join(root, "deep", "x"), filepath.Join(root, "sess")}
	if !slices.Equal(got, want) {
		t.Errorf("candidates %q, want %q", got, want)
	}
	if cands, _ := Scan(root, owned, WithDepth(1)); len(cands) != 1 || cands[0].Path != want[1] {
		t.Errorf("depth 1: candidates %+v, want only %s", cands, want[1])
	}
	if o, err := Orphans(root, owned); err != nil || len(o) != 0 {
		t.Errorf("Orphans = %+v, %v; want none", o, err)
	}
	before := map[string]map[string]string{}
	for _, d := range []string{"sess", "deep", "mixed", "empty", "locked"} {
		before[d] = snapshot(t, filepath.Join(root, d))
	}
	rep := collect(t, root, owned, WithStopped(0))
	if len(rep.Reclaimed) != 0 || len(rep.Kept) != 2 {
		t.Errorf("reclaimed %+v, kept %+v; want both leftovers kept", rep.Reclaimed, rep.Kept)
	}
	for d, snap := range before {
		sameSnapshot(t, d, snap, snapshot(t, filepath.Join(root, d)))
	}
}

// The veto decides about a leftover while the collector holds a flock on
// it, and the leftover goes whole; one that someone else flocks (a real
// process) is kept, without asking the veto, until that process is gone.
func TestLeftoverVeto(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	gone, held, vetoed := filepath.Join(root, "gone"), filepath.Join(root, "held"), filepath.Join(root, "vetoed")
	for _, d := range []string{gone, held, vetoed} {
		writeFile(t, filepath.Join(d, "app.log"), strings.Repeat("log\n", 1000))
		writeFile(t, filepath.Join(d, "data", "cache", "blob"), "layer")
	}
	holder := startHelper(t, "lease", held, "ready")
	keptBefore := map[string]map[string]string{held: snapshot(t, held), vetoed: snapshot(t, vetoed)}

	var mu sync.Mutex
	asked := map[string]bool{}
	veto := WithKeep(func(dir string) bool {
		f, err := os.Open(dir)
		if err != nil {
			t.Errorf("veto on %s: %v", dir, err)
			return true
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Errorf("veto on %s asked without the collector's flock (flock: %v)", dir, err)
		}
		mu.Lock()
		defer mu.Unlock()
		asked[dir] = true
		return dir == vetoed
	})
	owned := WithOwnedNames("app.log", "data")
	if o, err := Orphans(root, owned, veto); err != nil || len(o) != 2 {
		t.Errorf("Orphans = %+v, %v; want gone and vetoed", o, err)
	}
	rep := collect(t, root, owned, veto)

	mustNotExist(t, gone)
	for d, snap := range keptBefore {
		sameSnapshot(t, d, snap, snapshot(t, d))
	}
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != gone || rep.Reclaimed[0].Reason != ReasonLeftover || rep.Reclaimed[0].Bytes <= 0 {
		t.Errorf("reclaimed %+v, want %s as %s with its bytes", rep.Reclaimed, gone, ReasonLeftover)
	}
	kept := map[string]Candidate{}
	for _, k := range rep.Kept {
		kept[k.Path] = k
	}
	if k := kept[held]; k.Class != ClassLive || k.Reason != ReasonLeaseHeld {
		t.Errorf("flocked leftover kept as %s/%s, want %s/%s", k.Class, k.Reason, ClassLive, ReasonLeaseHeld)
	}
	if k := kept[vetoed]; k.Class != ClassLive || k.Reason != ReasonEmbedderKeep {
		t.Errorf("vetoed leftover kept as %s/%s, want %s/%s", k.Class, k.Reason, ClassLive, ReasonEmbedderKeep)
	}
	if asked[held] {
		t.Error("the veto was asked about a leftover someone flocks")
	}

	holder.Kill()
	collect(t, root, owned, veto)
	mustNotExist(t, held)
	mustExist(t, vetoed)
}

// An owned name inside an orphan's data directory that holds a state file
// is a VM's data directory, not the embedder's entry: the orphan is
// reclaimed and that directory stays whole.
func TestOwnedNameNestedDataDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	vm := filepath.Join(root, "vm")
	makeVM(t, vm, orphanState())
	nested := filepath.Join(vm, "cache")
	makeVM(t, nested, &state.State{Version: 1, Name: "nested", CreatedAt: time.Now()})
	before := snapshot(t, nested)
	rep := collect(t, root, WithOwnedNames("cache"))
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != vm {
		t.Errorf("reclaimed %+v, want %s", rep.Reclaimed, vm)
	}
	mustNotExist(t, filepath.Join(vm, state.FileName), filepath.Join(vm, rootfsWorkName))
	sameSnapshot(t, nested, before, snapshot(t, nested))
}

// A data directory below an owned entry, deeper than a state file of its
// own, keeps that entry from being the embedder's: neither the reclaim of
// a sibling orphan nor the embedder's leftovers rule removes a stopped VM
// in it, at the scan's depth (where it is reported kept) or below it.
func TestOwnedNameDeepDataDir(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{DefaultDepth, DefaultDepth + 1} {
		root := t.TempDir()
		orphan := filepath.Join(root, "proj", "data")
		makeVM(t, orphan, orphanState())
		stopped := &state.State{Version: 1, Name: "stopped", CreatedAt: time.Now()}
		inProj := filepath.Join(root, "proj", "cache", "inner")
		alone := filepath.Join(root, "solo", "cache", "inner")
		makeVM(t, inProj, stopped)
		makeVM(t, alone, stopped)
		before := map[string]map[string]string{inProj: snapshot(t, inProj), alone: snapshot(t, alone)}
		rep := collect(t, root, WithOwnedNames("cache"), WithDepth(depth), WithKeep(func(string) bool { return false }))
		if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != orphan {
			t.Errorf("depth %d: reclaimed %+v, want %s", depth, rep.Reclaimed, orphan)
		}
		for d, snap := range before {
			sameSnapshot(t, d, snap, snapshot(t, d))
		}
	}
}

// A state file in a clone's rootfs-work inside an owned entry is a guest
// image's file: the entry is still the embedder's leftovers, reclaimed.
func TestOwnedNameGuestStateFile(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	session := filepath.Join(root, "session")
	writeFile(t, filepath.Join(session, "data", rootfsWorkName, "srv", state.FileName), "{}")
	rep := collect(t, root, WithOwnedNames("data"), WithKeep(func(string) bool { return false }))
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != session {
		t.Errorf("reclaimed %+v, want %s", rep.Reclaimed, session)
	}
	mustNotExist(t, session)
}
