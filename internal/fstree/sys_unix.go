// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// fileID identifies a directory, with its Linux mount id where the walk's
// method gives one (hasMnt).
type fileID struct {
	dev, ino uint64
	mnt      uint64
	hasMnt   bool
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
	mountAuto   mountMethod = iota // the best the system offers (resolve)
	mountStatx                     // statx's mount ids (Linux 5.8)
	mountHandle                    // name_to_handle_at's mount ids (older kernels)
	// mountInfo compares st_dev, trusted only when /proc/self/mountinfo
	// shows one mount of the tree's device (a bind mount would be a second).
	mountInfo
	mountDev // st_dev alone (no bind mounts of a filesystem onto itself)
	// mountNone: nothing tells a same-filesystem bind mount, so every
	// directory below the top is taken for a possible mount.
	mountNone
)

// mounter stats entries with the mount id its method gives, and judges
// whether they are on the top's mount.
type mounter struct {
	method  mountMethod
	devOnce bool // mountInfo: the top's device is mounted once
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
	default: // the mount-ID methods judge by ID, not by device
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

// lstatAt and fstatFD stat an entry, or an open descriptor, with the mount
// id the method gives.
func (m mounter) lstatAt(dirfd int, name string) (stat, error) { return m.statAt(dirfd, name) }
func (m mounter) fstatFD(fd int) (stat, error)                 { return m.statAt(fd, "") }

// plainStatAt stats name in dirfd (fd itself for ""), never following a
// symlink, without a mount id.
func plainStatAt(dirfd int, name string) (stat, error) {
	var st unix.Stat_t
	var err error
	if name == "" {
		err = sysat.Fstat(dirfd, &st)
	} else {
		err = sysat.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return stat{}, err
	}
	return stat{id: fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, mode: uint32(st.Mode), nlink: uint64(st.Nlink), blocks: int64(st.Blocks)}, nil
}

// closeFD closes without retrying: an interrupted close has released fd.
func closeFD(fd int) { _ = unix.Close(fd) }

// makeAccessible gives the owner of the open directory fd rwx, so that its
// entries can be listed and removed.
func makeAccessible(fd int) {
	st, err := plainStatAt(fd, "")
	if err != nil || st.mode&0o700 == 0o700 {
		return
	}
	_ = sysat.Fchmod(fd, st.mode&0o7777|0o700)
}

// makeEntryAccessible gives the owner of the directory name in dirfd rwx,
// never following a symlink: where the system cannot (Linux before 6.6) it
// does nothing and the caller reports the original error.
func makeEntryAccessible(dirfd int, name string, mode uint32) {
	_ = sysat.Fchmodat(dirfd, name, mode&0o7777|0o700, unix.AT_SYMLINK_NOFOLLOW)
}

func isPermission(err error) bool {
	return err == unix.EACCES || err == unix.EPERM
}
