// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/hangtest"
	"github.com/stacklok/go-microvm/state"
)

// hangGuard bounds a call that must not block; it is a guard against a
// hang, not an assertion about speed.
const hangGuard = 10 * time.Second

// noHang runs fn in a goroutine and fails the test if it has not returned
// within hangGuard. A FIFO that fn may be blocked on is opened for both
// ends afterwards, so a hang found does not outlive the test.
func noHang[T any](t *testing.T, what string, fifos []string, fn func() (T, error)) (T, error) {
	t.Helper()
	return hangtest.Within(t, hangGuard, what, fn, func() {
		for _, f := range fifos {
			if fd, err := unix.Open(f, unix.O_RDWR|unix.O_NONBLOCK, 0); err == nil {
				unix.Close(fd)
			}
		}
	})
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	mkdir(t, filepath.Dir(path))
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRootLockFIFO: a FIFO planted as the root lock is never waited on:
// Collect reports it by name and reclaims without the root lock, in
// place; Scan and Orphans never touch the root lock.
func TestRootLockFIFO(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	makeVM(t, filepath.Join(root, "vm"), orphanState())
	lock := filepath.Join(root, LockName())
	mkfifo(t, lock)
	fifos := []string{lock}

	orphans, err := noHang(t, "Orphans", fifos, func() ([]Orphan, error) { return Orphans(root) })
	if err != nil || len(orphans) != 1 {
		t.Errorf("Orphans = %v, %v; want the one orphan", orphans, err)
	}
	rep, err := noHang(t, "Collect", fifos, func() (*Report, error) { return Collect(root) })
	if err != nil || len(rep.Reclaimed) != 1 || len(rep.Errors) != 1 || !errors.Is(rep.Errors[0], state.ErrNotRegular) || rep.Errors[0].Path != lock {
		t.Errorf("Collect = %+v, %v; want the orphan reclaimed and state.ErrNotRegular naming %s", rep, err, lock)
	}
	mustNotExist(t, filepath.Join(root, "vm"))
}

// TestHostileOpens plants, at every name the collector opens, what must
// not make it wait or follow anything: FIFOs, device nodes and symlinks.
// Scan, Orphans and Collect must return (each under a guard), never write
// outside root, and handle the directory beside the trap.
func TestHostileOpens(t *testing.T) {
	t.Parallel()
	mknod := func(t *testing.T, path string) {
		t.Helper()
		mkdir(t, filepath.Dir(path))
		// A character device like /dev/null: harmless if opened, but
		// the collector must not even open it.
		if err := unix.Mknod(path, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Skipf("mknod refused (%v): the device cases need root", err)
		}
	}
	cases := []struct {
		name string
		// build plants the trap in root, beside which vm is an orphan,
		// and returns the FIFOs it made.
		build func(t *testing.T, root, outside string) []string
		// vmClass is vm's class in Scan; reclaimed says whether
		// Collect must reclaim it.
		vmClass   Class
		reclaimed bool
		// collectErr: Collect reports it (a root-level trap) and goes
		// on without the root lock.
		collectErr error
	}{
		{"root lock is a device", func(t *testing.T, root, _ string) []string {
			mknod(t, filepath.Join(root, LockName()))
			return nil
		}, ClassOrphan, true, state.ErrNotRegular},
		{"root lock is a symlink", func(t *testing.T, root, outside string) []string {
			if err := os.Symlink(filepath.Join(outside, "f"), filepath.Join(root, LockName())); err != nil {
				t.Fatal(err)
			}
			return nil
		}, ClassOrphan, true, state.ErrNotRegular},
		{"state lock is a FIFO", func(t *testing.T, root, _ string) []string {
			lock := filepath.Join(root, "vm", state.LockFileName)
			os.Remove(lock)
			mkfifo(t, lock)
			return []string{lock}
		}, ClassOrphan, true, nil},
		{"state lock is a device", func(t *testing.T, root, _ string) []string {
			lock := filepath.Join(root, "vm", state.LockFileName)
			os.Remove(lock)
			mknod(t, lock)
			return nil
		}, ClassOrphan, false, nil},
		{"state file is a FIFO", func(t *testing.T, root, _ string) []string {
			p := filepath.Join(root, "vm", state.FileName)
			os.Remove(p)
			mkfifo(t, p)
			return []string{p}
		}, ClassUnreadable, false, nil},
		{"state file is a device", func(t *testing.T, root, _ string) []string {
			p := filepath.Join(root, "vm", state.FileName)
			os.Remove(p)
			mknod(t, p)
			return nil
		}, ClassUnreadable, false, nil},
		{"root trash is a FIFO", func(t *testing.T, root, _ string) []string {
			p := filepath.Join(root, TrashName)
			mkfifo(t, p)
			return []string{p}
		}, ClassOrphan, true, nil},
		{"trash in a directory is a FIFO", func(t *testing.T, root, _ string) []string {
			p := filepath.Join(root, "other", TrashName)
			mkfifo(t, p)
			return []string{p}
		}, ClassOrphan, true, nil},
		{"candidate names are FIFOs", func(t *testing.T, root, _ string) []string {
			a, b := filepath.Join(root, "fifo"), filepath.Join(root, "x", "data")
			mkfifo(t, a)
			mkfifo(t, b)
			return []string{a, b}
		}, ClassOrphan, true, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			top := t.TempDir()
			root, outside := filepath.Join(top, "root"), filepath.Join(top, "outside")
			vm := filepath.Join(root, "vm")
			makeVM(t, vm, orphanState())
			writeFile(t, filepath.Join(outside, "f"), "outside")
			fifos := c.build(t, root, outside)
			before := snapshot(t, outside)

			cands, err := noHang(t, "Scan", fifos, func() ([]Candidate, error) { return Scan(root) })
			if err != nil {
				t.Errorf("Scan: %v", err)
			}
			if len(cands) != 1 || cands[0].Path != vm || cands[0].Class != c.vmClass {
				t.Errorf("Scan = %+v, want only %s as %s", cands, vm, c.vmClass)
			}
			if _, err := noHang(t, "Orphans", fifos, func() ([]Orphan, error) { return Orphans(root) }); err != nil {
				t.Errorf("Orphans: %v", err)
			}
			rep, err := noHang(t, "Collect", fifos, func() (*Report, error) { return Collect(root) })
			switch {
			case err != nil:
				t.Errorf("Collect: %v", err)
			case c.collectErr != nil && !slices.ContainsFunc(rep.Errors, func(e *fs.PathError) bool { return errors.Is(e, c.collectErr) }):
				t.Errorf("Collect errors %v, want %v", rep.Errors, c.collectErr)
			case err != nil:
				t.Errorf("Collect: %v", err)
			case c.reclaimed != (len(rep.Reclaimed) == 1):
				t.Errorf("Collect reclaimed %v, want vm reclaimed: %v (errors %v)", rep.Reclaimed, c.reclaimed, rep.Errors)
			case !c.reclaimed && c.vmClass == ClassOrphan && len(rep.Errors) == 0 && (len(rep.Kept) != 1 || rep.Kept[0].Err == nil):
				t.Errorf("Collect kept the orphan without saying why: %+v", rep)
			}
			if c.reclaimed {
				mustNotExist(t, filepath.Join(vm, rootfsWorkName))
			} else {
				mustExist(t, filepath.Join(vm, rootfsWorkName))
			}
			sameSnapshot(t, "outside", before, snapshot(t, outside))
		})
	}
}

// emptyDir removes everything in dir, as an owner's os.RemoveAll does
// before it removes dir itself.
func emptyDir(t *testing.T, dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Error(err)
		}
	}
}

// TestNoLockFileRecreated: an owner that deletes its data directory after
// the scan saw it (state file and lock file already gone, the directory
// not yet) finds no lock file brought back by the collector, so its
// recursive removal succeeds.
func TestNoLockFileRecreated(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	vm := filepath.Join(root, "vm")
	makeVM(t, vm, orphanState())
	reclaim := func(path string) {
		if path != vm {
			return
		}
		emptyDir(t, vm)
	}
	rep := collect(t, root, withHooks(hooks{reclaim: reclaim}))
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Bytes != 0 {
		t.Errorf("reclaimed %v, want vm reclaimed by its owner, nothing freed here", rep.Reclaimed)
	}
	mustNotExist(t, filepath.Join(vm, state.LockFileName))
	if err := os.Remove(vm); err != nil {
		t.Errorf("the owner's removal of its directory: %v", err)
	}
}

// TestCreatedLockFileRemoved: a collector that had to create the lock file
// and then, under the lock, finds the state file gone removes the lock
// file again.
func TestCreatedLockFileRemoved(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	vm := filepath.Join(root, "vm")
	makeVM(t, vm, orphanState())
	if err := os.Remove(filepath.Join(vm, state.LockFileName)); err != nil {
		t.Fatal(err)
	}
	stateLocked := func(path string) {
		if path != vm {
			return
		}
		emptyDir(t, vm)
	}
	rep := collect(t, root, withHooks(hooks{stateLocked: stateLocked}))
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Bytes != 0 {
		t.Errorf("reclaimed %v, want vm reclaimed by its owner, nothing freed here", rep.Reclaimed)
	}
	mustNotExist(t, filepath.Join(vm, state.LockFileName))
	if err := os.Remove(vm); err != nil {
		t.Errorf("the owner's removal of its directory: %v", err)
	}
}

// TestVanishingDirectories: directories removed while the scan walks them
// (a plain directory between its open and its listing, a candidate
// between the scan and the reclaim) are simply gone, not errors.
func TestVanishingDirectories(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	mkdir(t, filepath.Join(root, "plain", "sub"))
	makeVM(t, filepath.Join(root, "gone-vm"), orphanState())
	makeVM(t, filepath.Join(root, "vm"), orphanState())
	vanish := func(path string) {
		if err := os.RemoveAll(path); err != nil {
			t.Error(err)
		}
	}
	entered := func(rel string) {
		if rel == "plain" {
			vanish(filepath.Join(root, rel))
		}
	}
	reclaim := func(path string) {
		if filepath.Base(path) == "gone-vm" {
			vanish(path)
		}
	}
	rep := collect(t, root, withHooks(hooks{entered: entered, reclaim: reclaim}))
	// gone-vm went before the reclaim: already gone, so reclaimed.
	if len(rep.Reclaimed) != 2 || rep.Reclaimed[0].Path != filepath.Join(root, "gone-vm") || rep.Reclaimed[0].Bytes != 0 {
		t.Errorf("reclaimed %+v, want vm and gone-vm (nothing freed)", rep.Reclaimed)
	}
	mkdir(t, filepath.Join(root, "plain", "sub"))
	if _, err := Scan(root); err != nil {
		t.Errorf("Scan: %v", err)
	}
}

// TestScanShowsTrueClass: a held lease makes a directory live whatever its
// state says. Scan, which lists, probes it and shows it; Orphans and
// Collect skip the probes of a directory that cannot be an orphan anyway
// (here: unreadable) and keep it all the same.
func TestScanShowsTrueClass(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	vm := filepath.Join(root, "vm")
	makeVM(t, vm, orphanState())
	writeFile(t, filepath.Join(vm, state.FileName), "{")
	startHelper(t, "lease", vm, "ready")
	if c := scanOne(t, root, vm); c.Class != ClassLive || c.Reason != ReasonLeaseHeld {
		t.Errorf("Scan: %s (%s), want live: the lease is held", c.Class, c.Reason)
	}
	if orphans, err := Orphans(root); err != nil || len(orphans) != 0 {
		t.Errorf("Orphans = %v, %v; want none", orphans, err)
	}
	rep, err := Collect(root)
	if err != nil || len(rep.Reclaimed) != 0 || len(rep.Kept) != 1 {
		t.Errorf("Collect = %+v, %v; want vm kept", rep, err)
	}
	mustExist(t, filepath.Join(vm, rootfsWorkName))
}

// TestNeverEntersOwnRootfsWorkOrCache: a state file inside a data
// directory's rootfs clone or image cache (a guest or hostile image can put
// one at the top of its rootfs) is never a candidate, at any depth, and
// nothing in there is touched but the clone's removal with its orphan.
// Elsewhere those names are ordinary directories (TestVMsNamedLikeOwnEntries).
func TestNeverEntersOwnRootfsWorkOrCache(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	plant := func(dir string) {
		writeJSON(t, dir, orphanState())
		writeFile(t, filepath.Join(dir, rootfsWorkName, "etc", "passwd"), "guest")
		writeJSON(t, filepath.Join(dir, "nested"), orphanState())
		writeFile(t, filepath.Join(dir, consoleLogName), "guest log")
	}
	// root itself is a data directory with its image cache, as in the
	// single-VM layout.
	writeJSON(t, root, &state.State{Version: 1})
	cache := filepath.Join(root, cacheName)
	plant(cache)
	plant(filepath.Join(cache, "sha256"))
	real := filepath.Join(root, "vm")
	makeVM(t, real, orphanState())
	plant(filepath.Join(real, rootfsWorkName))
	plant(filepath.Join(real, rootfsWorkName, "x", "y"))
	plant(filepath.Join(real, cacheName))
	want := []string{root, real}

	for _, opts := range [][]Option{nil, {WithDepth(6)}} {
		cands, err := Scan(root, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if len(cands) != 2 || cands[0].Path != want[0] || cands[1].Path != want[1] {
			t.Fatalf("Scan(%d options) = %+v, want only %q", len(opts), cands, want)
		}
	}
	before := snapshot(t, cache)
	beforeOwn := snapshot(t, filepath.Join(real, cacheName))
	rep := collect(t, root, WithDepth(6))
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Path != real {
		t.Fatalf("Collect reclaimed %+v, want only %s", rep.Reclaimed, real)
	}
	mustNotExist(t, filepath.Join(real, rootfsWorkName), filepath.Join(real, state.FileName))
	sameSnapshot(t, "root's cache", before, snapshot(t, cache))
	sameSnapshot(t, "the VM's cache", beforeOwn, snapshot(t, filepath.Join(real, cacheName)))
}
