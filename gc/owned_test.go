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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/state"
)

// brood-box's entries, as its sweep knows them.
var bboxOwned = []string{".bbox-sentinel", "broodbox.log", "cache", "firmware.ref.json"}

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
	writeFile(t, filepath.Join(vms, "other", "broodbox.log"), "not a VM: no state anywhere below")

	keepSnap := map[string]map[string]string{}
	for _, d := range []string{live, vetoed, outside, filepath.Join(vms, "other"), filepath.Join(vms, "README")} {
		keepSnap[d] = snapshot(t, d)
	}

	// The veto runs concurrently for different directories.
	var mu sync.Mutex
	var asked []string
	rep := collect(t, vms,
		WithOwnedNames(bboxOwned...),
		WithStopped(0),
		WithKeep(func(dataDir string) bool {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, dataDir)
			return dataDir == vetoedData
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
