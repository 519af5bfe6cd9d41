// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package testproc

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// MountBtrfs mounts a fresh loop-backed btrfs of 128 MiB and returns its
// mount point, unmounted when the test ends. It skips the test when it
// cannot: not root, btrfs-progs not installed, or no kernel support.
func MountBtrfs(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("btrfs"); err != nil {
		t.Skip("btrfs not installed (apt-get install btrfs-progs)")
	}
	return mountLoop(t, 128<<20, "mkfs.btrfs", "-q")
}

// MountExt4 mounts a fresh loop-backed ext4 of size bytes with no blocks
// reserved for root (-m 0), so that filling it leaves root no space
// either, and returns its mount point, unmounted when the test ends. It
// skips the test when it cannot.
func MountExt4(t testing.TB, size int64) string {
	t.Helper()
	return mountLoop(t, size, "mkfs.ext4", "-q", "-m", "0")
}

// mountLoop makes a filesystem with mkfs (and its args) in an image of
// size bytes and mounts it through a loop device.
func mountLoop(t testing.TB, size int64, mkfs string, args ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a loop device")
	}
	if _, err := exec.LookPath(mkfs); err != nil {
		t.Skipf("%s not installed", mkfs)
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, append(args, img)...).CombinedOutput(); err != nil {
		t.Skipf("%s: %v: %s", mkfs, err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount %s: %v: %s", mkfs, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}

// Btrfs runs the btrfs tool with args and fails the test when it fails.
func Btrfs(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("btrfs", args...).CombinedOutput(); err != nil {
		t.Fatalf("btrfs %q: %v: %s", args, err, out)
	}
}
