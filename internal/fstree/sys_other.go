// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !linux

package fstree

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// resolve: without mount ids, mounts are told apart by st_dev alone; the
// BSD kernels have no bind mount of a filesystem onto itself (a nullfs or
// FUSE mount has its own device).
func (m mountMethod) resolve(int) mountMethod { return mountDev }

// devMountedOnce is never asked outside Linux.
func devMountedOnce(uint64) bool { return false }

// lstatAt stats name in dirfd without following a symlink.
func (m mounter) lstatAt(dirfd int, name string) (stat, error) {
	var st unix.Stat_t
	err := sysat.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return stat{}, err
	}
	return fromStat(&st), nil
}

// fstatFD stats the open descriptor fd.
func (m mounter) fstatFD(fd int) (stat, error) { return fstatFD(fd) }

// fstatFD stats the open descriptor fd.
func fstatFD(fd int) (stat, error) {
	var st unix.Stat_t
	err := sysat.Fstat(fd, &st)
	if err != nil {
		return stat{}, err
	}
	return fromStat(&st), nil
}

func fromStat(st *unix.Stat_t) stat {
	return stat{
		id:     fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)},
		mode:   uint32(st.Mode),
		nlink:  uint64(st.Nlink),
		blocks: int64(st.Blocks),
	}
}

// listNames lists the directory fd. It reads through a fresh descriptor
// of the same directory because the system's directory stream API, not
// getdents, is the stable interface here. It lists every entry, whatever
// dirsOnly says: the walk stats each one anyway.
func listNames(fd int, _ []byte, _ bool, _ string) ([]string, error) {
	dfd, err := sysat.Openat(fd, ".", sysat.DirFlags, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dfd), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if pe, ok := err.(*os.PathError); ok {
		err = pe.Err
	}
	return names, err
}
