// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

// TestProbesOnReadOnlyFilesystem runs the probes on a tmpfs remounted
// read-only, where any attempt to create a file or directory would fail.
func TestProbesOnReadOnlyFilesystem(t *testing.T) {
	// Not parallel: it mounts, which changes the process's mount table
	// that other tests' walks read.
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("cannot mount a tmpfs here (%v): the read-only case needs root", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	dirs := probeTree(t, mnt)
	if err := syscall.Mount("", mnt, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	before := listing(t, mnt)
	for _, d := range dirs {
		if held, err := probeLock(d); err != nil || held {
			t.Errorf("probeLock(%s) = %v, %v; want free", d, held, err)
		}
		if held, err := ProbeLease(d); err != nil || held {
			t.Errorf("ProbeLease(%s) = %v, %v; want free", d, held, err)
		}
		if _, err := NewManager(d).Load(); err != nil {
			t.Errorf("Load(%s): %v", d, err)
		}
	}

	// Held locks are seen on a read-only filesystem too.
	withLock := dirs[0]
	lockFile, err := os.Open(filepath.Join(withLock, LockFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer lockFile.Close()
	if ok, err := tryFlock(lockFile); err != nil || !ok {
		t.Fatalf("flock the lock file: %v %v", ok, err)
	}
	if held, err := probeLock(withLock); err != nil || !held {
		t.Errorf("ProbeLock while held = %v, %v; want held", held, err)
	}
	l, err := TryLease(withLock)
	if err != nil {
		t.Fatalf("TryLease on a read-only filesystem: %v", err)
	}
	defer l.Close()
	if held, err := ProbeLease(withLock); err != nil || !held {
		t.Errorf("ProbeLease while held = %v, %v; want held", held, err)
	}
	if after := listing(t, mnt); !reflect.DeepEqual(before, after) {
		t.Errorf("probes changed the read-only tree:\nbefore %v\nafter  %v", before, after)
	}
}
