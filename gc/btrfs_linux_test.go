// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBtrfsSubvolumeRootfsWork: a rootfs-work cloned as a btrfs subvolume
// snapshot has its own st_dev on the same mount; it is reclaimed, not
// left in the trash as a mount point run after run.
func TestBtrfsSubvolumeRootfsWork(t *testing.T) {
	// Not parallel: it mounts, which changes the process's mount table
	// that other tests' walks read.
	mnt := btrfsMount(t)
	root := filepath.Join(mnt, "root")
	dir := filepath.Join(root, "vm")
	image := filepath.Join(mnt, "image")
	runBtrfs(t, "subvolume", "create", image)
	writeFile(t, filepath.Join(image, "etc", "hostname"), "guest\n")
	mkdir(t, dir)
	runBtrfs(t, "subvolume", "snapshot", image, filepath.Join(dir, rootfsWorkName))
	runBtrfs(t, "subvolume", "create", filepath.Join(dir, rootfsWorkName, "var"))
	writeFile(t, filepath.Join(dir, rootfsWorkName, "var", "log"), "guest log\n")
	writeJSON(t, dir, orphanState())
	var a, b unix.Stat_t
	if unix.Lstat(filepath.Join(dir, rootfsWorkName), &a) != nil || unix.Lstat(dir, &b) != nil || a.Dev == b.Dev {
		t.Fatal("the snapshot should have its own st_dev")
	}
	rep := collect(t, root)
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Bytes == 0 {
		t.Fatalf("reclaimed %+v; want the VM with its subvolumes", rep.Reclaimed)
	}
	mustNotExist(t, dir, filepath.Join(root, TrashName))
	mustExist(t, filepath.Join(image, "etc", "hostname"))
}

// btrfsMount mounts a fresh loop-backed btrfs and returns its mount point;
// it skips when btrfs-progs or kernel support is missing.
func btrfsMount(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a loop device")
	}
	for _, tool := range []string{"mkfs.btrfs", "btrfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install btrfs-progs)", tool)
		}
	}
	img := filepath.Join(t.TempDir(), "btrfs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(128 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.btrfs", "-q", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.btrfs: %v: %s", err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount btrfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

func runBtrfs(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("btrfs", args...).CombinedOutput(); err != nil {
		t.Fatalf("btrfs %q: %v: %s", args, err, out)
	}
}
