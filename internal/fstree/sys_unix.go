// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// fileID identifies a directory for the checks that a reopened descriptor
// is the directory seen before and that an entry is on the tree's mount.
type fileID struct {
	dev, ino uint64
	// mnt is the Linux mount id; hasMnt is false where the walk's method
	// gives none (darwin, kernels without statx's mount id and filesystems
	// without file handles, non-directories outside statx).
	mnt    uint64
	hasMnt bool
}

// sameDir reports whether b is the directory a: the same inode of the same
// device, on the same mount where both mount ids are known.
func sameDir(a, b fileID) bool {
	return a.ino == b.ino && a.dev == b.dev && (!a.hasMnt || !b.hasMnt || a.mnt == b.mnt)
}

// mountMethod is how a walk tells whether a directory is on the mount of
// the tree's top.
type mountMethod uint8

const (
	// mountAuto picks the best method the system offers (see resolve).
	mountAuto mountMethod = iota
	// mountStatx compares the mount ids statx gives (Linux 5.8).
	mountStatx
	// mountHandle compares the mount ids name_to_handle_at gives (older
	// Linux kernels, on filesystems that export file handles).
	mountHandle
	// mountInfo compares st_dev, trusted only when /proc/self/mountinfo
	// shows a single mount of the tree's device: a bind mount of the same
	// filesystem would be a second one.
	mountInfo
	// mountDev compares st_dev alone (systems without bind mounts of a
	// filesystem onto itself).
	mountDev
	// mountNone: nothing can tell a same-filesystem bind mount, so every
	// directory below the top is taken for a possible mount.
	mountNone
)

// mounter stats entries with the mount id its method gives, and judges
// whether they are on the top's mount.
type mounter struct {
	method mountMethod
	// devOnce is set (mountInfo) when the top's device is mounted once.
	devOnce bool
}

// same reports whether b is on the mount of a, and whether the method
// could tell at all. Where mount ids are known they alone decide: a btrfs
// subvolume has its own st_dev on the same mount.
func (m mounter) same(a, b fileID) (same, known bool) {
	if a.hasMnt && b.hasMnt {
		return a.mnt == b.mnt, true
	}
	if a.dev != b.dev {
		return false, true
	}
	switch m.method {
	case mountDev:
		return true, true
	case mountInfo:
		return true, m.devOnce
	default:
		// The mount-ID methods judge by ID, not by device.
		return true, false
	}
}

// onMount reports whether the directory b is on the mount of a, treating
// one the method cannot judge as another mount.
func (m mounter) onMount(a, b fileID) bool {
	same, known := m.same(a, b)
	return same && known
}

// SameMount reports whether the open directory d is on the mount of the
// open directory parent, judged as a walk judges a subdirectory: false when
// d is a mount point, and also where the system cannot tell a bind mount
// of parent's filesystem, or a stat fails.
func SameMount(parent, d *os.File) bool {
	m := mounter{method: mountAuto.resolve(int(parent.Fd()))}
	a, err := m.fstatFD(int(parent.Fd()))
	if err != nil {
		return false
	}
	b, err := m.fstatFD(int(d.Fd()))
	if err != nil {
		return false
	}
	if m.method == mountInfo {
		m.devOnce = devMountedOnce(a.id.dev)
	}
	return m.onMount(a.id, b.id)
}

// stat holds the facts of one entry that a walk needs.
type stat struct {
	id     fileID
	mode   uint32
	nlink  uint64
	blocks int64
}

func (s *stat) isDir() bool { return s.mode&unix.S_IFMT == unix.S_IFDIR }

func closeFD(fd int) {
	// A close interrupted by a signal has still released the descriptor
	// on Linux and darwin, so it must not be retried.
	_ = unix.Close(fd)
}

// makeAccessible gives the owner of the open directory fd read, write and
// search permission, so that its entries can be listed and removed. It
// changes nothing when they are already granted.
func makeAccessible(fd int) {
	st, err := fstatFD(fd)
	if err != nil || st.mode&0o700 == 0o700 {
		return
	}
	_ = sysat.Fchmod(fd, st.mode&0o7777|0o700)
}

// makeEntryAccessible gives the owner of the directory name in dirfd read,
// write and search permission without following a symbolic link: where the
// system cannot change a mode without following (Linux before 6.6), it
// does nothing and the caller reports the original error.
func makeEntryAccessible(dirfd int, name string, mode uint32) {
	_ = sysat.Fchmodat(dirfd, name, mode&0o7777|0o700, unix.AT_SYMLINK_NOFOLLOW)
}

func isPermission(err error) bool {
	return err == unix.EACCES || err == unix.EPERM
}
