// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !linux

package fstree

import (
	"os"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// resolve: the BSD kernels have no bind mount of a filesystem onto itself
// (a nullfs or FUSE mount has its own device), so st_dev tells.
func (m mountMethod) resolve(int) mountMethod { return mountDev }

func devMountedOnce(uint64) bool { return false }

func (m mountMethod) statAt(dirfd int, name string) (stat, error) { return plainStatAt(dirfd, name) }

// listNames lists fd through a new descriptor of it with the system's
// directory stream, every entry whatever dirsOnly says.
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
