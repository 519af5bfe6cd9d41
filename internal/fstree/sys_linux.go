// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package fstree

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

const (
	statxMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_NLINK |
		unix.STATX_INO | unix.STATX_BLOCKS | unix.STATX_MNT_ID
	// AT_NO_AUTOMOUNT shows an autofs directory as a mount point.
	statxFlags    = unix.AT_SYMLINK_NOFOLLOW | unix.AT_NO_AUTOMOUNT | unix.AT_STATX_SYNC_AS_STAT
	mountInfoPath = "/proc/self/mountinfo"
)

// resolve picks the best method that works on the open directory fd.
func (m mountMethod) resolve(fd int) mountMethod {
	if m != mountAuto {
		return m
	}
	if st, err := mountStatx.statAt(fd, ""); err == nil && st.id.hasMnt {
		return mountStatx
	}
	if _, _, err := sysat.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH); err == nil {
		return mountHandle
	}
	if _, err := os.Stat(mountInfoPath); err == nil {
		return mountInfo
	}
	return mountNone
}

// devMountedOnce reports whether exactly one mount of this namespace has
// the device dev; false when mountinfo cannot be read.
func devMountedOnce(dev uint64) bool {
	f, err := os.Open(mountInfoPath)
	if err != nil {
		return false
	}
	defer f.Close()
	want := fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		if f := bytes.Fields(s.Bytes()); len(f) > 2 && string(f[2]) == want {
			n++
		}
	}
	return s.Err() == nil && n == 1
}

// statAt stats name in dirfd (dirfd itself for ""), never following a
// symlink, with the mount id the method gives.
func (m mountMethod) statAt(dirfd int, name string) (stat, error) {
	flags := 0
	if name == "" {
		flags = unix.AT_EMPTY_PATH
	}
	if m == mountStatx {
		var sx unix.Statx_t
		if err := sysat.Statx(dirfd, name, statxFlags|flags, statxMask, &sx); err != nil {
			return stat{}, err
		}
		id := fileID{dev: unix.Mkdev(sx.Dev_major, sx.Dev_minor), ino: sx.Ino, mnt: sx.Mnt_id, hasMnt: sx.Mask&unix.STATX_MNT_ID != 0}
		return stat{id: id, mode: uint32(sx.Mode), nlink: uint64(sx.Nlink), blocks: int64(sx.Blocks)}, nil
	}
	st, err := plainStatAt(dirfd, name)
	if err != nil || m != mountHandle || !st.isDir() {
		return st, err
	}
	// Without a handle there is no mount id: a possible mount.
	_, mnt, err := sysat.NameToHandleAt(dirfd, name, flags)
	st.id.mnt, st.id.hasMnt = uint64(mnt), err == nil
	return st, nil
}

// listNames lists the directory fd from its start, "." and ".." left out,
// reading through scratch. With dirsOnly it leaves out what the listing
// says is no directory, except marker.
func listNames(fd int, scratch []byte, dirsOnly bool, marker string) (names []string, err error) {
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return nil, err
	}
	for {
		n, err := sysat.Getdents(fd, scratch)
		if err != nil || n <= 0 {
			return names, err
		}
		// linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1),
		// d_name (NUL-terminated, padded).
		for b := scratch[:n]; len(b) >= 19; {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				return names, unix.EIO
			}
			name, _, _ := bytes.Cut(b[19:reclen], []byte{0})
			typ := b[18]
			b = b[reclen:]
			skip := len(name) == 0 || string(name) == "." || string(name) == ".." ||
				dirsOnly && typ != unix.DT_DIR && typ != unix.DT_UNKNOWN && string(name) != marker
			if !skip {
				names = append(names, string(name))
			}
		}
	}
}
