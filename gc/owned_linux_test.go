// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/state"
)

// An owned entry that cannot go (a mount point inside it) keeps the VM an
// orphan with its state file and its rootfs-work, reported, so that the
// next Collect, once the mount is gone, finishes it: nothing is left
// unreclaimable.
func TestOwnedEntryLeft(t *testing.T) {
	vms := t.TempDir()
	vm, data := bboxVM(t, vms, "crashed", orphanState())
	mnt := filepath.Join(data, "cache", "mnt")
	mountTmpfs(t, vms, mnt)
	writeFile(t, filepath.Join(mnt, "f"), "on another filesystem")

	rep, err := Collect(vms, WithOwnedNames(bboxOwned...))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Reclaimed) != 0 {
		t.Fatalf("reclaimed %+v with an owned entry left behind", rep.Reclaimed)
	}
	if len(rep.Kept) != 1 || rep.Kept[0].Class != ClassOrphan || rep.Kept[0].Path != data {
		t.Errorf("kept = %+v, want %s kept as an orphan", rep.Kept, data)
	}
	if len(rep.Errors) == 0 {
		t.Error("the mount point left inside an owned entry was not reported")
	}
	mustExist(t, filepath.Join(data, state.FileName), filepath.Join(data, rootfsWorkName), filepath.Join(mnt, "f"))

	if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	collect(t, vms, WithOwnedNames(bboxOwned...))
	mustNotExist(t, vm)
}
