// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/testproc"
)

// TestBtrfsSubvolumeRootfsWork: a rootfs-work cloned as a btrfs subvolume
// snapshot has its own st_dev on the same mount; it is reclaimed, not
// left in the trash as a mount point run after run.
func TestBtrfsSubvolumeRootfsWork(t *testing.T) {
	mnt := testproc.MountBtrfs(t)
	root := filepath.Join(mnt, "root")
	dir := filepath.Join(root, "vm")
	image := filepath.Join(mnt, "image")
	testproc.Btrfs(t, "subvolume", "create", image)
	writeFile(t, filepath.Join(image, "etc", "hostname"), "guest\n")
	mkdir(t, dir)
	testproc.Btrfs(t, "subvolume", "snapshot", image, filepath.Join(dir, rootfsWorkName))
	testproc.Btrfs(t, "subvolume", "create", filepath.Join(dir, rootfsWorkName, "var"))
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
