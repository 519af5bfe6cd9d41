// SPDX-License-Identifier: Apache-2.0

package fstree

import (
	"io"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// statxMissing is set once statx failed with ENOSYS (or EPERM from a
// seccomp filter) while fstatat works, so later calls go to fstatat.
var statxMissing atomic.Bool

const statxMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_NLINK |
	unix.STATX_INO | unix.STATX_BLOCKS | unix.STATX_MNT_ID

// statxFlags never follows a symlink and never triggers an automount, so
// an autofs directory is seen as the mount point it is.
const statxFlags = unix.AT_SYMLINK_NOFOLLOW | unix.AT_NO_AUTOMOUNT | unix.AT_STATX_SYNC_AS_STAT

// lstatAt stats name in dirfd without following a symlink. The mount id
// comes with it, so a bind mount of the same filesystem is told apart.
func lstatAt(dirfd int, name string) (stat, error) {
	return statxAt(dirfd, name, 0)
}

// fstatFD stats the open descriptor fd.
func fstatFD(fd int) (stat, error) {
	return statxAt(fd, "", unix.AT_EMPTY_PATH)
}

func statxAt(dirfd int, name string, flags int) (stat, error) {
	if !statxMissing.Load() {
		var sx unix.Statx_t
		for {
			err := unix.Statx(dirfd, name, statxFlags|flags, statxMask, &sx)
			if err == unix.EINTR {
				continue
			}
			if err == nil {
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
				}, nil
			}
			if err != unix.ENOSYS && err != unix.EPERM {
				return stat{}, err
			}
			break
		}
	}
	var st unix.Stat_t
	for {
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW|flags)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return stat{}, err
		}
		statxMissing.Store(true)
		return stat{
			id:     fileID{dev: st.Dev, ino: st.Ino},
			mode:   st.Mode,
			nlink:  st.Nlink,
			blocks: st.Blocks,
		}, nil
	}
}

// readNames lists the directory fd from its start.
func readNames(fd int, buf []byte) ([]string, error) {
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return nil, err
	}
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return names, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
