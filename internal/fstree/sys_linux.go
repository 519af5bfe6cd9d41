// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package fstree

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// statxMissing is set once statx failed with ENOSYS (or EPERM from a
// seccomp filter), or gave no mount id, so later walks go straight to the
// older methods.
var statxMissing atomic.Bool

const statxMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_NLINK |
	unix.STATX_INO | unix.STATX_BLOCKS | unix.STATX_MNT_ID

// statxFlags never follows a symlink and never triggers an automount, so
// an autofs directory is seen as the mount point it is.
const statxFlags = unix.AT_SYMLINK_NOFOLLOW | unix.AT_NO_AUTOMOUNT | unix.AT_STATX_SYNC_AS_STAT

// resolve picks the method a walk uses, trying the open directory fd (the
// top's parent): statx's mount id (Linux 5.8), else name_to_handle_at's
// (which older kernels give for filesystems that export handles), else
// /proc/self/mountinfo, else none.
func (m mountMethod) resolve(fd int) mountMethod {
	if m != mountAuto {
		return m
	}
	if !statxMissing.Load() {
		var sx unix.Statx_t
		err := sysat.Statx(fd, "", statxFlags|unix.AT_EMPTY_PATH, statxMask, &sx)
		if err == nil && sx.Mask&unix.STATX_MNT_ID != 0 {
			return mountStatx
		}
		statxMissing.Store(true)
	}
	if _, ok := handleMountID(fd, "", unix.AT_EMPTY_PATH); ok {
		return mountHandle
	}
	if _, err := os.Stat(mountInfoPath); err == nil {
		return mountInfo
	}
	return mountNone
}

// mountInfoPath lists the mounts of this process's mount namespace.
const mountInfoPath = "/proc/self/mountinfo"

// devMountedOnce reports whether exactly one mount of this process's mount
// namespace has the device dev: then no bind mount of that filesystem
// exists, and st_dev alone tells every mount apart. It is false when
// mountinfo cannot be read.
func devMountedOnce(dev uint64) bool {
	f, err := os.Open(mountInfoPath)
	if err != nil {
		return false
	}
	defer f.Close()
	want := []byte(fmt.Sprintf(" %d:%d ", unix.Major(dev), unix.Minor(dev)))
	n := 0
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		// Fields: mount id, parent id, major:minor, ...; the device is
		// the third field, which no earlier field can imitate.
		if i := bytes.Index(line, want); i >= 0 && bytes.Count(line[:i], []byte(" ")) == 1 {
			n++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return false
		}
	}
	return n == 1
}

// handleMountID returns the mount id that name_to_handle_at reports for
// name in dirfd (never following a symlink: the call follows one only when
// asked to), and whether it gave one.
func handleMountID(dirfd int, name string, flags int) (uint64, bool) {
	_, mnt, err := sysat.NameToHandleAt(dirfd, name, flags)
	if err != nil {
		return 0, false
	}
	return uint64(mnt), true
}

// lstatAt stats name in dirfd without following a symlink, with the
// mount id the method gives (for a directory).
func (m mounter) lstatAt(dirfd int, name string) (stat, error) {
	return m.statAt(dirfd, name, 0)
}

// fstatFD stats the open descriptor fd, with the mount id the method
// gives.
func (m mounter) fstatFD(fd int) (stat, error) {
	return m.statAt(fd, "", unix.AT_EMPTY_PATH)
}

func (m mounter) statAt(dirfd int, name string, flags int) (stat, error) {
	if m.method == mountStatx {
		var sx unix.Statx_t
		err := sysat.Statx(dirfd, name, statxFlags|flags, statxMask, &sx)
		if err != nil {
			return stat{}, err
		}
		return fromStatx(&sx), nil
	}
	st, err := plainStatAt(dirfd, name, flags)
	if err != nil || m.method != mountHandle || !st.isDir() {
		return st, err
	}
	// Only directories need a mount id: a mount point is one. A
	// filesystem that exports no handles gives none, and the directory is
	// then taken for a possible mount.
	// name_to_handle_at follows no symlink unless AT_SYMLINK_FOLLOW.
	st.id.mnt, st.id.hasMnt = handleMountID(dirfd, name, flags&unix.AT_EMPTY_PATH)
	return st, nil
}

func fromStatx(sx *unix.Statx_t) stat {
	return stat{
		id: fileID{
			dev:    unix.Mkdev(sx.Dev_major, sx.Dev_minor),
			ino:    sx.Ino,
			mnt:    sx.Mnt_id,
			hasMnt: sx.Mask&unix.STATX_MNT_ID != 0,
		},
		mode:   uint32(sx.Mode),
		nlink:  uint64(sx.Nlink),
		blocks: int64(sx.Blocks),
	}
}

// plainStatAt is fstatat without a mount id.
func plainStatAt(dirfd int, name string, flags int) (stat, error) {
	var st unix.Stat_t
	err := sysat.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW|flags)
	if err != nil {
		return stat{}, err
	}
	return stat{
		id:     fileID{dev: st.Dev, ino: st.Ino},
		mode:   st.Mode,
		nlink:  uint64(st.Nlink), // uint32 on arm64, uint64 on amd64
		blocks: int64(st.Blocks),
	}, nil
}

// fstatFD stats the open descriptor fd, without a mount id.
func fstatFD(fd int) (stat, error) { return plainStatAt(fd, "", unix.AT_EMPTY_PATH) }

// listNames lists the directory fd from its start ("." and ".." left
// out), reading through scratch. With dirsOnly, it leaves out the entries
// the listing says are not directories, except one named marker.
func listNames(fd int, scratch []byte, dirsOnly bool, marker string) ([]string, error) {
	var names []string
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return names, err
	}
	for {
		n, err := sysat.Getdents(fd, scratch)
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		// struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2),
		// d_type (1), then d_name, NUL-terminated and padded to d_reclen.
		for b := scratch[:n]; len(b) >= 19; {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				return names, unix.EIO
			}
			name, typ := b[19:reclen], b[18]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			b = b[reclen:]
			if len(name) == 0 || string(name) == "." || string(name) == ".." {
				continue
			}
			if dirsOnly && typ != unix.DT_DIR && typ != unix.DT_UNKNOWN && string(name) != marker {
				continue
			}
			names = append(names, string(name))
		}
	}
}
