// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// fileID identifies a directory, with its mount id where the method gives
// one (hasMnt).
type fileID struct {
	dev, ino uint64
	mnt      uint64
	hasMnt   bool
}

// mountMethod is how a walk tells another mount, best first.
type mountMethod uint8

const (
	mountAuto   mountMethod = iota // resolved to the best that works
	mountStatx                     // statx's mount id (Linux 5.8)
	mountHandle                    // name_to_handle_at's mount id
	mountInfo                      // mountinfo: settled to mountDev or mountNone
	mountDev                       // st_dev alone (no bind mount onto itself)
	mountNone                      // nothing tells a bind mount of the same filesystem
)

// settle turns mountInfo into mountDev for a tree on a device mounted
// once (no bind mount of it), else into mountNone.
func (m mountMethod) settle(dev uint64) mountMethod {
	switch {
	case m != mountInfo:
		return m
	case devMountedOnce(dev):
		return mountDev
	default:
		return mountNone
	}
}

// same reports whether b is on a's mount, and whether the method could
// tell. Mount ids alone decide where known: a btrfs subvolume has its own
// st_dev on the same mount.
func (m mountMethod) same(a, b fileID) (same, known bool) {
	if a.hasMnt && b.hasMnt {
		return a.mnt == b.mnt, true
	}
	if a.dev != b.dev {
		return false, true
	}
	return true, m == mountDev
}

// onMount takes what the method cannot judge for another mount.
func (m mountMethod) onMount(a, b fileID) bool {
	same, known := m.same(a, b)
	return same && known
}

// SameMount reports whether the open directory d is on the mount of the
// open directory parent, as a walk judges a subdirectory: false for a
// mount point, where the system cannot tell a bind mount of parent's
// filesystem, or when a stat fails.
func SameMount(parent, d *os.File) bool {
	m := mountAuto.resolve(int(parent.Fd()))
	a, aerr := m.statAt(int(parent.Fd()), "")
	b, berr := m.statAt(int(d.Fd()), "")
	return aerr == nil && berr == nil && m.settle(a.id.dev).onMount(a.id, b.id)
}

type stat struct {
	id     fileID
	mode   uint32
	nlink  uint64
	blocks int64
}

func (s *stat) isDir() bool { return s.mode&unix.S_IFMT == unix.S_IFDIR }

// plainStatAt stats name in dirfd (dirfd itself for ""), never following
// a symlink, without a mount id.
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

func isPermission(err error) bool {
	return err == unix.EACCES || err == unix.EPERM
}
