// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// openDirFlags opens a directory without following a symlink in its last
// component: a directory swapped for a symlink fails with ELOOP or ENOTDIR.
const openDirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// dirFlag makes os.OpenFile refuse anything but a directory.
const dirFlag = unix.O_DIRECTORY

// rootLockFlags opens (creating if needed) the root lock file. O_NOFOLLOW
// refuses a symlink planted in its place; O_NONBLOCK keeps open(2) from
// waiting for the writer of a FIFO planted there.
const rootLockFlags = unix.O_CREAT | unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// stateLockFlags open an existing state lock file: read-write as
// state.LoadAndLock does (a flock emulation over NFS needs a writable
// descriptor), never following a symlink, never waiting on a FIFO.
const stateLockFlags = unix.O_RDWR | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// withFd runs fn on f's descriptor, keeping f alive and in its current
// (non-)blocking mode, which f.Fd() would not.
func withFd(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// ignoringEINTR retries fn while it is interrupted by a signal.
func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// openDirAt opens the single component name below parent as a directory,
// never following a symlink. display names the result in errors.
func openDirAt(parent *os.File, name, display string) (*os.File, error) {
	var nfd int
	err := withFd(parent, func(fd int) error {
		return ignoringEINTR(func() error {
			var err error
			nfd, err = unix.Openat(fd, name, openDirFlags, 0)
			return err
		})
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: display, Err: err}
	}
	return os.NewFile(uintptr(nfd), display), nil
}

// reopenDir opens dir again as a new open file description, so that reading
// its entries does not move the offset of dir itself.
func reopenDir(dir *os.File) (*os.File, error) {
	return openDirAt(dir, ".", dir.Name())
}

// lstatAt stats name below dir without following a symlink.
func lstatAt(dir *os.File, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := withFd(dir, func(fd int) error {
		return ignoringEINTR(func() error {
			return unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		})
	})
	return st, err
}

// unlinkAt removes name below dir: a non-directory, or with
// unix.AT_REMOVEDIR an empty directory.
func unlinkAt(dir *os.File, name string, flags int) error {
	return withFd(dir, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Unlinkat(fd, name, flags) })
	})
}

// mkdirAt creates the directory name below dir.
func mkdirAt(dir *os.File, name string, mode uint32) error {
	return withFd(dir, func(fd int) error {
		return ignoringEINTR(func() error { return unix.Mkdirat(fd, name, mode) })
	})
}

// renameAt atomically renames from/fromName to to/toName.
func renameAt(from *os.File, fromName string, to *os.File, toName string) error {
	return withFd(from, func(ffd int) error {
		return withFd(to, func(tfd int) error {
			return ignoringEINTR(func() error { return unix.Renameat(ffd, fromName, tfd, toName) })
		})
	})
}

// sameFile reports whether a and b are open on the same inode.
func sameFile(a, b *os.File) (bool, error) {
	ai, err := a.Stat()
	if err != nil {
		return false, err
	}
	bi, err := b.Stat()
	if err != nil {
		return false, err
	}
	return os.SameFile(ai, bi), nil
}

func isRegular(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFREG }

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }

func allocated(st *unix.Stat_t) int64 { return int64(st.Blocks) * 512 }

// freedBy is what unlinking the file st describes frees: its allocated
// blocks when this is its last link, nothing while another link keeps the
// data alive.
func freedBy(st *unix.Stat_t) int64 {
	if st.Nlink > 1 {
		return 0
	}
	return allocated(st)
}

func modTime(st *unix.Stat_t) time.Time { return time.Unix(st.Mtim.Unix()) }

// isGone reports errors that mean the entry is no longer there, or is no
// longer the directory it was (swapped for a symlink or a file).
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

// isNotEmpty reports rmdir errors that mean "something else is in there, or
// it is a mount point": the directory is left, which is not a failure.
func isNotEmpty(err error) bool {
	return errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EBUSY)
}

// devOf returns the device number of the file fi describes.
func devOf(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

// openat opens name below the directory dirFd, retrying on EINTR.
func openat(dirFd int, name string, flags int) (int, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = unix.Openat(dirFd, name, flags, 0)
		return err
	})
	return fd, err
}

// fstat stats the open descriptor fd.
func fstat(fd int, st *unix.Stat_t) error {
	return ignoringEINTR(func() error { return unix.Fstat(fd, st) })
}

// fstatat stats name below dirFd without following a symlink.
func fstatat(dirFd int, name string, st *unix.Stat_t) error {
	return ignoringEINTR(func() error { return unix.Fstatat(dirFd, name, st, unix.AT_SYMLINK_NOFOLLOW) })
}

// fileType names the type of a non-regular file, for errors.
func fileType(st *unix.Stat_t) string {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "device"
	}
	return fmt.Sprintf("type %#o", st.Mode&unix.S_IFMT)
}
