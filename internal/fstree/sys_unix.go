// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"golang.org/x/sys/unix"
)

// dirFlags opens a directory for reading without following a final
// symbolic link: a symlink fails with ELOOP (or ENOTDIR), never resolves.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// fileID identifies a directory for the checks that a reopened descriptor
// is the directory seen before and that an entry is on the tree's mount.
type fileID struct {
	dev, ino uint64
	// mnt is the Linux mount id; hasMnt is false where it is unknown
	// (darwin, kernels before 5.8), and only dev is compared then.
	mnt    uint64
	hasMnt bool
}

// sameMount reports whether b is on the filesystem and mount of a.
func sameMount(a, b fileID) bool {
	return a.dev == b.dev && (!a.hasMnt || !b.hasMnt || a.mnt == b.mnt)
}

// sameDir reports whether b is the directory a.
func sameDir(a, b fileID) bool {
	return a.ino == b.ino && sameMount(a, b)
}

// stat holds the facts of one entry that a walk needs.
type stat struct {
	id     fileID
	mode   uint32
	nlink  uint64
	blocks int64
}

func (s *stat) isDir() bool { return s.mode&unix.S_IFMT == unix.S_IFDIR }

func openDirAt(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, dirFlags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func unlinkAt(dirfd int, name string, flags int) error {
	for {
		err := unix.Unlinkat(dirfd, name, flags)
		if err != unix.EINTR {
			return err
		}
	}
}

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
	for unix.Fchmod(fd, st.mode&0o7777|0o700) == unix.EINTR {
	}
}

// makeEntryAccessible gives the owner of the directory name in dirfd read,
// write and search permission without following a symbolic link: where the
// system cannot change a mode without following (Linux before 6.6), it
// does nothing and the caller reports the original error.
func makeEntryAccessible(dirfd int, name string, mode uint32) {
	for unix.Fchmodat(dirfd, name, mode&0o7777|0o700, unix.AT_SYMLINK_NOFOLLOW) == unix.EINTR {
	}
}

func isPermission(err error) bool {
	return err == unix.EACCES || err == unix.EPERM
}
