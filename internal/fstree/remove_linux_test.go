// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package fstree

// The tests that mount are not parallel: they change the mount table that
// other tests' walks read.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/testproc"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounting, or dropping privileges with setpriv)")
	}
}

// mount mounts and registers the unmount; it skips the test when the
// system refuses to mount.
func mount(t *testing.T, source, target, fstype string, flags uintptr, data string) {
	t.Helper()
	requireRoot(t)
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENODEV) {
			t.Skipf("mount %s refused: %v", fstype, err)
		}
		t.Fatalf("mount %s on %s: %v", source, target, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, 0); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", target, err)
			}
		}
	})
}

func mountID(t *testing.T, path string) uint64 {
	t.Helper()
	var sx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &sx); err != nil {
		t.Fatal(err)
	}
	if sx.Mask&unix.STATX_MNT_ID == 0 {
		t.Skip("statx gives no mount id on this kernel")
	}
	return sx.Mnt_id
}

func TestRemoveAtTmpfsInside(t *testing.T) {
	var o Options
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	mnt := filepath.Join(tree, "a", "mnt")
	mkdirs(t, mnt)
	writeFile(t, filepath.Join(tree, "a", "f"), 10)
	writeFile(t, filepath.Join(tree, "b", "g"), 10)
	mount(t, "tmpfs", mnt, "tmpfs", 0, "size=1m")
	writeFile(t, filepath.Join(mnt, "inner", "keep"), 10)
	inside := snapshot(t, mnt)

	size, err := sizeTree(t, context.Background(), o, tmp, "tree")
	if err != nil {
		t.Fatalf("SizeAt: %v", err)
	}
	res, err := removeTree(t, context.Background(), o, tmp, "tree")
	if !errors.Is(err, ErrMountPoint) {
		t.Fatalf("RemoveAt err = %v; want ErrMountPoint", err)
	}
	for _, r := range []Result{size, res} {
		if !slices.Equal(r.Mounts, []string{mnt}) || len(r.Errors) != 0 {
			t.Errorf("mounts %q, errors %v; want [%q] and no error", r.Mounts, r.Errors, mnt)
		}
	}
	if size.Bytes != res.Bytes || size.Files != res.Files || size.Dirs != res.Dirs || res.Files != 2 || res.Dirs != 1 {
		t.Errorf("SizeAt %+v, RemoveAt %+v; want both 2 files and 1 dir (b)", size, res)
	}
	sameSnapshot(t, "tmpfs", inside, snapshot(t, mnt))
	if mountID(t, mnt) == mountID(t, tree) {
		t.Error("the tmpfs is no longer mounted")
	}
	mustNotExist(t, filepath.Join(tree, "a", "f"))
	mustNotExist(t, filepath.Join(tree, "b"))

	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := removeTree(t, context.Background(), o, tmp, "tree"); err != nil {
		t.Fatalf("RemoveAt after unmounting: %v", err)
	}
	mustNotExist(t, tree)
}

// TestRemoveAtTopIsMountPoint: a top entry on another mount than its
// parent is reported and not entered.
func TestRemoveAtTopIsMountPoint(t *testing.T) {
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	mkdirs(t, tree)
	mount(t, "tmpfs", tree, "tmpfs", 0, "size=1m")
	writeFile(t, filepath.Join(tree, "keep"), 10)
	res, err := removeTree(t, context.Background(), Options{}, tmp, "tree")
	if !errors.Is(err, ErrMountPoint) || !slices.Equal(res.Mounts, []string{tree}) || res.Files+res.Dirs != 0 {
		t.Errorf("RemoveAt = %+v, %v; want the mount reported, nothing removed", res, err)
	}
	mustExist(t, filepath.Join(tree, "keep"))
}

// TestRemoveAtBindMountInside: a bind mount of a directory of the same
// filesystem (same st_dev) is told apart by its mount id.
func TestRemoveAtBindMountInside(t *testing.T) {
	var o Options
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	tree := filepath.Join(tmp, "tree")
	bind := filepath.Join(tree, "x", "bind")
	makeSentinel(t, src)
	mkdirs(t, bind)
	writeFile(t, filepath.Join(tree, "y", "f"), 10)
	mount(t, src, bind, "", unix.MS_BIND, "")
	var a, b unix.Stat_t
	if unix.Lstat(bind, &a) != nil || unix.Lstat(tree, &b) != nil || a.Dev != b.Dev {
		t.Fatal("the bind mount should have the tree's st_dev")
	}
	if mountID(t, bind) == mountID(t, tree) {
		t.Fatal("the bind mount should have its own mount id")
	}
	before := snapshot(t, src)
	res, err := removeTree(t, context.Background(), o, tmp, "tree")
	if !errors.Is(err, ErrMountPoint) || !slices.Equal(res.Mounts, []string{bind}) || len(res.Errors) != 0 {
		t.Errorf("RemoveAt = %+v, %v; want only the bind mount reported", res, err)
	}
	sameSnapshot(t, "bind source", before, snapshot(t, src))
	mustExist(t, filepath.Join(bind, "file"))
	mustNotExist(t, filepath.Join(tree, "y"))
}

// TestRemoveAtUnprivileged removes, as an unprivileged user, a tree it owns
// whose directories deny it writing, reading or searching.
func TestRemoveAtUnprivileged(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	const uid = 65534
	work := filepath.Join(testproc.PublicTempDir(t), "work")
	tree := filepath.Join(work, "tree")
	for _, f := range []string{"f0", "ro/f1", "ro/f2", "ro/sub/f3", "none/f4", "none/sub/f5", "rnox/f6", "xonly/f7"} {
		writeFile(t, filepath.Join(tree, f), 100)
	}
	mkdirs(t, filepath.Join(tree, "ro2", "sub"))
	symlink(t, "/etc", filepath.Join(tree, "ln"))
	err := filepath.Walk(work, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]os.FileMode{
		"ro/sub": 0o555, "ro": 0o555, "ro2/sub": 0o555, "ro2": 0o555,
		"none/sub": 0, "none": 0, "rnox": 0o444, "xonly": 0o111, ".": 0o555,
	}
	for d, m := range modes {
		if err := os.Chmod(filepath.Join(tree, d), m); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Chmod(tree, 0o755) })

	out := runHelper(t, nobody,
		"FSTREE_DIR="+work, "FSTREE_NAME=tree")
	mustNotExist(t, tree)
	if out.Files != 9 || out.Dirs != 9 {
		t.Errorf("helper removed %d files, %d dirs; want 9, 9", out.Files, out.Dirs)
	}
}

// TestRemoveAtUnprivilegedCannotEscape: an unprivileged remover meets a
// directory it cannot change (owned by root, mode 0555): it reports the
// failing path, leaves that directory and its ancestors, and removes the
// rest.
func TestRemoveAtUnprivilegedCannotEscape(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	work := filepath.Join(testproc.PublicTempDir(t), "work")
	tree := filepath.Join(work, "tree")
	writeFile(t, filepath.Join(tree, "rootdir", "f"), 10)
	writeFile(t, filepath.Join(tree, "mine", "g"), 10)
	for _, p := range []string{work, tree, filepath.Join(tree, "mine"), filepath.Join(tree, "mine", "g")} {
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(tree, "rootdir"), 0o555); err != nil {
		t.Fatal(err)
	}
	out, err := runHelperErr(t, nobody, "FSTREE_DIR="+work, "FSTREE_NAME=tree")
	if err == nil {
		t.Fatalf("helper succeeded with %+v; want a failure", out)
	}
	want := "unlinkat " + filepath.Join(tree, "rootdir", "f") + ": permission denied"
	if !slices.Equal(out.Errors, []string{want}) {
		t.Errorf("errors %q; want [%q]", out.Errors, want)
	}
	mustExist(t, filepath.Join(tree, "rootdir", "f"))
	mustNotExist(t, filepath.Join(tree, "mine"))
}

// TestRemoveAtNeverChangesParent: a file on top that its parent, read-only
// to the remover, keeps is reported and left, the parent's mode unchanged.
func TestRemoveAtNeverChangesParent(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not installed")
	}
	work := filepath.Join(testproc.PublicTempDir(t), "work")
	writeFile(t, filepath.Join(work, "f"), 10)
	for _, p := range []string{work, filepath.Join(work, "f")} {
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(work, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(work, 0o755) })
	out, err := runHelperErr(t, nobody, "FSTREE_DIR="+work, "FSTREE_NAME=f")
	if err == nil {
		t.Fatalf("helper succeeded with %+v; want a failure", out)
	}
	if want := "unlinkat " + filepath.Join(work, "f") + ": permission denied"; !slices.Equal(out.Errors, []string{want}) {
		t.Errorf("errors %q; want [%q]", out.Errors, want)
	}
	mustExist(t, filepath.Join(work, "f"))
	if fi, err := os.Stat(work); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("parent: %v, %v; want mode 0555, unchanged", fi, err)
	}
}

// mountMethods are the mount-detection methods forced in turn, each
// checked on this kernel (which offers the best one) by the tests below.
var mountMethods = []struct {
	name   string
	method mountMethod
}{
	{"statx", mountStatx},
	{"name_to_handle_at", mountHandle},
	{"mountinfo", mountInfo},
	{"none", mountNone},
}

// requireMethod skips when the kernel cannot give what the method asks.
func requireMethod(t *testing.T, m mountMethod, dir string) {
	t.Helper()
	switch m {
	case mountStatx:
		mountID(t, dir)
	case mountHandle:
		if _, _, err := unix.NameToHandleAt(unix.AT_FDCWD, dir, 0); err != nil {
			t.Skipf("name_to_handle_at: %v", err)
		}
	case mountInfo:
		if _, err := os.Stat(mountInfoPath); err != nil {
			t.Skipf("no mountinfo: %v", err)
		}
	default:
		// The device method and the automatic choice need nothing.
	}
}

// TestRemoveAtBindMountEachMethod: a bind mount of the same filesystem
// (same st_dev) inside the tree is never deleted through, whichever method
// tells mounts apart. Where nothing can (mountinfo lists the device twice,
// or no method at all), every subdirectory is left as a possible mount.
func TestRemoveAtBindMountEachMethod(t *testing.T) {
	requireRoot(t)
	for _, mm := range mountMethods {
		t.Run(mm.name, func(t *testing.T) {
			// A private tmpfs, so mountinfo's count of its device is
			// this test's own.
			tmp := t.TempDir()
			mount(t, "tmpfs", tmp, "tmpfs", 0, "size=4m")
			requireMethod(t, mm.method, tmp)
			src := filepath.Join(tmp, "src")
			tree := filepath.Join(tmp, "tree")
			bind := filepath.Join(tree, "x", "bind")
			makeSentinel(t, src)
			mkdirs(t, bind)
			writeFile(t, filepath.Join(tree, "y", "f"), 10)
			writeFile(t, filepath.Join(tree, "top"), 10)
			mount(t, src, bind, "", unix.MS_BIND, "")
			before := snapshot(t, src)

			o := Options{mounts: mm.method}
			res, err := removeTree(t, context.Background(), o, tmp, "tree")
			if !errors.Is(err, ErrMountPoint) || len(res.Errors) != 0 {
				t.Fatalf("RemoveAt = %+v, %v; want mount points reported, no error", res, err)
			}
			sameSnapshot(t, "bind source", before, snapshot(t, src))
			mustExist(t, filepath.Join(bind, "file"))
			mustNotExist(t, filepath.Join(tree, "top"))
			switch mm.method {
			case mountStatx, mountHandle:
				if !slices.Equal(res.Mounts, []string{bind}) {
					t.Errorf("mounts %q; want [%q]", res.Mounts, bind)
				}
				mustNotExist(t, filepath.Join(tree, "y"))
			default:
				want := []string{filepath.Join(tree, "x"), filepath.Join(tree, "y")}
				if !slices.Equal(res.Mounts, want) {
					t.Errorf("mounts %q; want every subdirectory %q", res.Mounts, want)
				}
				mustExist(t, filepath.Join(tree, "y", "f"))
			}
		})
	}
}

// TestRemoveAtMountinfoSingleMount: with st_dev and mountinfo only, a tree
// on a filesystem mounted once is removed whole, and a tmpfs inside it
// (another device) is still left.
func TestRemoveAtMountinfoSingleMount(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	mount(t, "tmpfs", tmp, "tmpfs", 0, "size=4m")
	requireMethod(t, mountInfo, tmp)
	tree := filepath.Join(tmp, "tree")
	writeFile(t, filepath.Join(tree, "a", "b", "f"), 10)
	inner := filepath.Join(tree, "c", "mnt")
	mkdirs(t, inner)
	mount(t, "tmpfs", inner, "tmpfs", 0, "size=1m")
	writeFile(t, filepath.Join(inner, "keep"), 10)
	res, err := removeTree(t, context.Background(), Options{mounts: mountInfo}, tmp, "tree")
	if !errors.Is(err, ErrMountPoint) || !slices.Equal(res.Mounts, []string{inner}) || len(res.Errors) != 0 {
		t.Fatalf("RemoveAt = %+v, %v; want only the inner tmpfs reported", res, err)
	}
	mustExist(t, filepath.Join(inner, "keep"))
	mustNotExist(t, filepath.Join(tree, "a"))
}

// TestRemoveAtBtrfsSubvolume: on btrfs, a subvolume has its own st_dev on
// the same mount. With mount ids it is removed like any directory (the
// top itself, and one nested in the tree); a snapshot too.
func TestRemoveAtBtrfsSubvolume(t *testing.T) {
	mnt := testproc.MountBtrfs(t)
	mountID(t, mnt)
	tree := filepath.Join(mnt, "tree")
	testproc.Btrfs(t, "subvolume", "create", tree)
	writeFile(t, filepath.Join(tree, "a", "f"), 4096)
	testproc.Btrfs(t, "subvolume", "create", filepath.Join(tree, "a", "sub"))
	writeFile(t, filepath.Join(tree, "a", "sub", "g"), 4096)
	testproc.Btrfs(t, "subvolume", "snapshot", filepath.Join(tree, "a", "sub"), filepath.Join(tree, "snap"))
	var a, b unix.Stat_t
	if unix.Lstat(tree, &a) != nil || unix.Lstat(mnt, &b) != nil || a.Dev == b.Dev {
		t.Fatal("the subvolume should have its own st_dev")
	}
	var o Options
	size, err := sizeTree(t, context.Background(), o, mnt, "tree")
	if err != nil || len(size.Mounts) != 0 || size.Files != 3 {
		t.Fatalf("SizeAt = %+v, %v; want 3 files, no mount", size, err)
	}
	res, err := removeTree(t, context.Background(), Options{}, mnt, "tree")
	if err != nil || len(res.Mounts) != 0 {
		t.Fatalf("RemoveAt = %+v, %v; want the subvolumes removed", res, err)
	}
	mustNotExist(t, tree)
}
