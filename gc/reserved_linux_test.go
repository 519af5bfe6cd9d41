// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/internal/testproc"
)

// TestTrashIsAMountPoint: a filesystem bind-mounted on root's trash name
// is neither used nor emptied: every file on it survives, the orphan
// beside it is reclaimed in place, and the mount is reported.
func TestTrashIsAMountPoint(t *testing.T) {
	requireMount(t)
	base := t.TempDir()
	root, src := filepath.Join(base, "root"), filepath.Join(base, "src")
	writeFile(t, filepath.Join(src, "1-1-1", "f"), "not the collector's")
	writeFile(t, filepath.Join(src, "g"), "nor this")
	if err := os.Chmod(src, 0o700); err != nil {
		t.Fatal(err)
	}
	trash := filepath.Join(root, TrashName)
	mkdir(t, trash)
	if err := unix.Mount(src, trash, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount refused: %v", err)
	}
	t.Cleanup(func() { unmountBelow(t, base) })
	vm := filepath.Join(root, "vm")
	makeVM(t, vm, orphanState())
	before := snapshot(t, src)

	for range 2 {
		rep, err := Collect(root)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Errors) != 1 || !errors.Is(rep.Errors[0], fstree.ErrMountPoint) || rep.Errors[0].Path != trash {
			t.Errorf("errors %v; want one naming the mounted trash", rep.Errors)
		}
		sameSnapshot(t, "the filesystem mounted on the trash", before, snapshot(t, src))
	}
	mustNotExist(t, vm)
}

// TestTrashOfAnotherUser: in a root shared by users (mode 1777), a trash
// another user made beforehand, open to all (0777), is never used: a VM's
// files never pass through it, it is not emptied nor removed, and the
// orphan is reclaimed in place. A root lock file planted under this
// user's name by another user is refused, never locked nor removed, and
// reported; the orphan is still reclaimed in place.
func TestTrashOfAnotherUser(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	root := sharedRoot(t)
	trash := filepath.Join(root, TrashName)
	asNobody(t, "mkdir", "-m", "0777", trash)
	asNobody(t, "touch", filepath.Join(trash, "theirs"))
	vm := filepath.Join(root, "vm")
	makeVM(t, vm, orphanState())
	if err := os.Chmod(vm, 0o700); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, trash)

	rep := collect(t, root)
	if len(rep.Reclaimed) != 1 {
		t.Errorf("reclaimed %v; want the orphan, in place", rep.Reclaimed)
	}
	mustNotExist(t, vm)
	sameSnapshot(t, "the other user's trash", before, snapshot(t, trash))

	// The root lock: this user's name, planted by another user.
	lock := filepath.Join(root, LockName())
	asNobody(t, "sh", "-c", "umask 0; touch "+lock)
	makeVM(t, vm, orphanState())
	rep, err := Collect(root)
	if err != nil || len(rep.Reclaimed) != 1 || len(rep.Errors) != 1 || !errors.Is(rep.Errors[0], fs.ErrPermission) || rep.Errors[0].Path != lock {
		t.Errorf("Collect = %+v, %v; want the orphan reclaimed, the planted lock reported by name", rep, err)
	}
	mustNotExist(t, vm)
	var st unix.Stat_t
	if err := unix.Lstat(lock, &st); err != nil || st.Uid != nobody {
		t.Errorf("the planted lock: %v, uid %d; want it left as it was", err, st.Uid)
	}
}

// TestNoInodeLeft: on a filesystem out of inodes the root lock file cannot
// be made; the orphans are still reclaimed, in place, freeing inodes, and
// the failure is reported by name.
func TestNoInodeLeft(t *testing.T) {
	t.Parallel()
	mnt := testproc.MountExt4(t, 16<<20)
	root := filepath.Join(mnt, "root")
	vm := filepath.Join(root, "vm")
	makeVM(t, vm, orphanState())
	filler := filepath.Join(mnt, "filler")
	mkdir(t, filler)
	for i := 0; ; i++ {
		f, err := os.Create(filepath.Join(filler, strconv.Itoa(i)))
		if err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
		_ = f.Close()
	}
	lock := filepath.Join(root, LockName())

	rep, err := Collect(root)
	if err != nil || len(rep.Reclaimed) != 1 || len(rep.Errors) != 1 || !errors.Is(rep.Errors[0], unix.ENOSPC) || rep.Errors[0].Path != lock {
		t.Errorf("Collect = %+v, %v; want the orphan reclaimed, ENOSPC on %s reported", rep, err, lock)
	}
	mustNotExist(t, vm, lock, filepath.Join(root, TrashName))
}

// sharedRoot makes a root that users share, as /tmp is: mode 1777, in a
// directory every user may enter.
func sharedRoot(t *testing.T) string {
	t.Helper()
	root := filepath.Join(testproc.PublicTempDir(t), "root")
	mkdir(t, root)
	if err := os.Chmod(root, 0o1777); err != nil {
		t.Fatal(err)
	}
	return root
}

// asNobody runs name with args as uid and gid 65534.
func asNobody(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := testproc.Nobody(t, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %q as nobody: %v: %s", name, args, err, out)
	}
}

// TestFullFilesystem: on a full filesystem (ext4 -m 0, filled) the trash
// cannot be made, and every orphan is reclaimed in place, freeing the
// space; nothing is left but the root lock's absence.
func TestFullFilesystem(t *testing.T) {
	t.Parallel()
	mnt := testproc.MountExt4(t, 16<<20)
	root := filepath.Join(mnt, "root")
	var vms []string
	for _, name := range []string{"a", "b/data"} {
		vm := filepath.Join(root, name)
		makeVM(t, vm, orphanState())
		vms = append(vms, vm)
	}
	fill(t, filepath.Join(mnt, "filler"))
	if err := os.Mkdir(filepath.Join(root, "probe"), 0o700); !errors.Is(err, unix.ENOSPC) {
		t.Skipf("mkdir on the filled filesystem: %v, want ENOSPC", err)
	}

	rep := collect(t, root)
	if len(rep.Reclaimed) != 2 || rep.BytesFreed <= 0 {
		t.Errorf("reclaimed %v, freed %d; want both orphans", rep.Reclaimed, rep.BytesFreed)
	}
	mustNotExist(t, append(vms, filepath.Join(root, TrashName), filepath.Join(root, LockName()))...)
}

// fill writes zeros to path until the filesystem holding it is full.
func fill(t testing.TB, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, 1<<16)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// The last partial block, and what the write-back finds short.
	for {
		if _, err := f.Write(buf[:512]); err != nil {
			break
		}
	}
	_ = f.Sync()
}

// TestTwoUsersShareARoot: collectors of uid 0 and uid 65534 on one root
// (mode 1777) never lock each other out. Root's collector keeps a live VM
// of nobody's and so keeps its lock file; root's collector is even running
// (its lock held) and has left a trash of its own; nobody's collector still
// reclaims its orphan, in place, and leaves root's trash alone; root's
// next run empties its trash.
func TestTwoUsersShareARoot(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	root := sharedRoot(t)
	live, theirs, mine := filepath.Join(root, "live"), filepath.Join(root, "theirs"), filepath.Join(root, "mine")
	makeVM(t, live, orphanState())
	makeVM(t, theirs, orphanState())
	makeVM(t, mine, orphanState())
	giveTree(t, live, nobody)
	giveTree(t, theirs, nobody)
	startHelper(t, "lease", live, "ready")

	// Root's run: reclaims both orphans (root may), keeps the live VM,
	// and so leaves its lock file.
	rep := collect(t, root)
	if len(rep.Reclaimed) != 2 || len(rep.Kept) != 1 {
		t.Fatalf("root's run: reclaimed %v, kept %v", rep.Reclaimed, rep.Kept)
	}
	mustExist(t, filepath.Join(root, LockName()))

	// Root's collector at work (its lock held), with a trash of its own.
	writeFile(t, filepath.Join(root, TrashName, "1-1-1", "f"), "root's")
	ownTrash(t, root)
	h := startHelper(t, "rootlock", root, "ready")
	makeVM(t, theirs, orphanState())
	giveTree(t, theirs, nobody)
	if rep := collectAs(t, root, true, 0); len(rep.Reclaimed) != 1 || rep.Reclaimed[0] != theirs || len(rep.Errors) != 0 {
		t.Fatalf("nobody's run: %+v; want its orphan reclaimed, no error", rep)
	}
	mustNotExist(t, theirs)
	mustExist(t, filepath.Join(root, TrashName, "1-1-1", "f"), live)
	h.Kill()

	rep = collect(t, root)
	if len(rep.Kept) != 1 || rep.BytesFreed <= 0 {
		t.Errorf("root's second run: %+v; want its trash emptied, the live VM kept", rep)
	}
	mustNotExist(t, filepath.Join(root, TrashName))
}

// TestPlantedLockConcurrent: with the root lock planted by another user,
// three collectors of this user run at once, none holding a root lock;
// each reclaim still holds its directory's own locks, so every orphan and
// its emptied parent go, and the only error is the planted lock's.
func TestPlantedLockConcurrent(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	root := sharedRoot(t)
	for i := range 30 {
		vm := filepath.Join(root, fmt.Sprintf("p%d", i%5), fmt.Sprintf("vm%d", i))
		makeVM(t, vm, orphanState())
		writeFile(t, filepath.Join(vm, rootfsWorkName, "a", "b", "c"), "x")
	}
	lock := filepath.Join(root, LockName())
	asNobody(t, "sh", "-c", "umask 0; touch "+lock)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			rep, err := Collect(root, WithDepth(3))
			if err != nil {
				t.Errorf("Collect: %v", err)
				return
			}
			for _, e := range rep.Errors {
				if e.Path != lock {
					t.Errorf("Collect reported %v", e)
				}
			}
		})
	}
	wg.Wait()
	if ents, err := os.ReadDir(root); err != nil || len(ents) != 1 || ents[0].Name() != LockName() {
		t.Errorf("root holds %v (%v); want only the planted lock", ents, err)
	}
}
