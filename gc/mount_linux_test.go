// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/state"
)

// TestOrphansReadOnly: Orphans works on a read-only filesystem; Collect
// says why it cannot work there and changes nothing.
func TestOrphansReadOnly(t *testing.T) {
	requireMount(t)
	base := t.TempDir()
	root := filepath.Join(base, "root")
	ro := filepath.Join(base, "ro")
	allKinds(t, root)
	mkdir(t, ro)
	if err := unix.Mount(root, ro, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount refused: %v", err)
	}
	t.Cleanup(func() { unmountBelow(t, ro) })
	if err := unix.Mount("", ro, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Skipf("read-only remount refused: %v", err)
	}
	before := snapshot(t, root)
	orphans, err := Orphans(ro, WithSizes())
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 3 || !strings.HasPrefix(orphans[0].Path, ro) {
		t.Errorf("Orphans = %+v, want 3 under %s", orphans, ro)
	}
	if _, err := Collect(ro); !errors.Is(err, unix.EROFS) {
		t.Errorf("Collect on a read-only root: %v, want EROFS", err)
	}
	sameSnapshot(t, "root", before, snapshot(t, root))
}

// TestMountInsideOrphan: a mount inside rootfs-work is reported and left
// mounted; a mount on rootfs-work itself keeps its data directory an
// orphan for later; the other orphans are reclaimed all the same.
func TestMountInsideOrphan(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	inside := filepath.Join(root, "inside")
	on := filepath.Join(root, "on")
	plain := filepath.Join(root, "plain")
	for _, d := range []string{inside, on, plain} {
		makeVM(t, d, orphanState())
	}
	mountTmpfs(t, base, filepath.Join(inside, rootfsWorkName, "mnt"))
	writeFile(t, filepath.Join(inside, rootfsWorkName, "mnt", "in-tmpfs"), "keep")
	mountTmpfs(t, base, filepath.Join(on, rootfsWorkName))
	writeFile(t, filepath.Join(on, rootfsWorkName, "in-tmpfs"), "keep")

	rep, err := Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, plain)
	if n := len(mountsBelow(t, base)); n != 2 {
		t.Errorf("%d mounts left below the test dir, want 2", n)
	}
	var mountErr, onErr bool
	for _, e := range rep.Errors {
		// A report error is a standard *fs.PathError: errors.As finds it
		// with its Op and Path, and errors.Is reaches the sentinel.
		var reportErr error = e
		var pathErr *fs.PathError
		if !errors.As(reportErr, &pathErr) || pathErr.Op == "" || pathErr.Path == "" {
			t.Errorf("report error %v: errors.As gives %+v, want an *fs.PathError with Op and Path", reportErr, pathErr)
		}
		mountErr = mountErr || errors.Is(reportErr, fstree.ErrMountPoint)
		onErr = onErr || e.Path == on
	}
	if !mountErr || !onErr {
		t.Errorf("Errors = %v; want the mount inside and the failed move of %s", rep.Errors, on)
	}
	mustExist(t, filepath.Join(on, state.FileName), filepath.Join(on, rootfsWorkName, "in-tmpfs"))
	if c := findKept(rep, on); c == nil || c.Class != ClassOrphan {
		t.Errorf("%s not kept as an orphan: %+v", on, rep.Kept)
	}
	// Nothing is lost on the next run either: the same reports, no more.
	rep2, err := Collect(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Errors) == 0 || len(mountsBelow(t, base)) != 2 {
		t.Errorf("second run: errors %v, mounts %v", rep2.Errors, mountsBelow(t, base))
	}
	for _, mp := range mountsBelow(t, base) {
		if data, err := os.ReadFile(filepath.Join(mp, "in-tmpfs")); err != nil || string(data) != "keep" {
			t.Errorf("file in mounted %s: %q, %v", mp, data, err)
		}
	}
}

func findKept(rep *Report, path string) *Candidate {
	for i := range rep.Kept {
		if rep.Kept[i].Path == path {
			return &rep.Kept[i]
		}
	}
	return nil
}

// TestDataDirOnOtherFilesystem: a data directory that is a mount point
// cannot rename rootfs-work into root's trash; it is reclaimed in place,
// and nothing of it is left but the mount point itself.
func TestDataDirOnOtherFilesystem(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	dir := filepath.Join(root, "vm")
	mountTmpfs(t, base, dir)
	makeVM(t, dir, orphanState())
	rep := collect(t, root)
	if len(rep.Reclaimed) != 1 || rep.Reclaimed[0].Bytes <= 0 {
		t.Fatalf("Reclaimed = %+v", rep.Reclaimed)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("left in the mounted data dir: %v", entries)
	}
}

// requireMount skips the test unless this process may mount. A test that
// mounts is not parallel: it changes the mount table other tests' walks read.
func requireMount(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
}

// mountTmpfs mounts a tmpfs on dir, skipping the test when mounting is
// refused. Every mount below base is detached when the test ends, wherever
// the collector moved it.
func mountTmpfs(t testing.TB, base, dir string) {
	t.Helper()
	requireMount(t)
	mkdir(t, dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("mount tmpfs refused: %v", err)
	}
	t.Cleanup(func() { unmountBelow(t, base) })
}

// mountsBelow lists the mount points at or below base, deepest first.
func mountsBelow(t testing.TB, base string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mounts []string
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == base || strings.HasPrefix(mp, base+"/") {
			mounts = append(mounts, mp)
		}
	}
	for i, j := 0, len(mounts)-1; i < j; i, j = i+1, j-1 {
		mounts[i], mounts[j] = mounts[j], mounts[i]
	}
	return mounts
}

func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unmountBelow(t testing.TB, base string) {
	for _, mp := range mountsBelow(t, base) {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mp, err)
		}
	}
}
