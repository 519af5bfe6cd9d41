// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/state"
)

// dirFlag makes os.OpenFile refuse anything but a directory.
const dirFlag = unix.O_DIRECTORY

// openDirAt opens the single component name below parent as a directory,
// never following a symlink. display names the result in errors.
func openDirAt(parent *os.File, name, display string) (*os.File, error) {
	var nfd int
	err := fstree.WithFd(parent, func(fd int) error {
		var err error
		nfd, err = fstree.OpenDirAt(fd, name)
		return err
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
	err := fstree.WithFd(dir, func(fd int) error { return fstree.Lstatat(fd, name, &st) })
	return st, err
}

// unlinkAt removes name below dir: a non-directory, or with
// unix.AT_REMOVEDIR an empty directory.
func unlinkAt(dir *os.File, name string, flags int) error {
	return fstree.WithFd(dir, func(fd int) error { return fstree.UnlinkAt(fd, name, flags) })
}

// mkdirAt creates the directory name below dir.
func mkdirAt(dir *os.File, name string, mode uint32) error {
	return fstree.WithFd(dir, func(fd int) error { return fstree.MkdirAt(fd, name, mode) })
}

// renameAt atomically renames from/fromName to to/toName.
func renameAt(from *os.File, fromName string, to *os.File, toName string) error {
	return fstree.WithFd(from, func(ffd int) error {
		return fstree.WithFd(to, func(tfd int) error { return fstree.RenameAt(ffd, fromName, tfd, toName) })
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

// parseInto returns the datadir.Parser that keeps what state.Parse returns
// in *s.
func parseInto(s **state.State) datadir.Parser {
	return func(data []byte) (err error) {
		*s, err = state.Parse(data)
		return err
	}
}

// dirOf returns the datadir.Dir view of d. d must stay open while the Dir is
// used; a directory descriptor is never in non-blocking mode, so Fd
// changes nothing about it.
func dirOf(d *os.File, path string) datadir.Dir { return datadir.NewDir(int(d.Fd()), path) }

// ErrNotWritable is returned, wrapped in an error naming the directory, its
// owner and mode, when a directory the collector must change is not
// writable by it and not its own to make writable: the directory is kept,
// with the same reason on every run, until its owner or root collects it.
var ErrNotWritable = errors.New("not writable by this user")

// makeWritable makes the directory d writable and searchable by this
// process when it is not, and this process owns it: it returns a function
// that puts the mode back (a no-op when nothing changed, or when d has
// gone). A directory this process cannot write and does not own gives an
// error wrapping ErrNotWritable. Root writes anything and changes nothing.
func makeWritable(d *os.File, path string) (restore func(), err error) {
	nothing := func() {}
	euid := os.Geteuid()
	if euid == 0 {
		return nothing, nil
	}
	var st unix.Stat_t
	err = fstree.WithFd(d, func(fd int) error {
		if err := fstree.Fstat(fd, &st); err != nil {
			return err
		}
		if unix.Faccessat(fd, ".", unix.W_OK|unix.X_OK, unix.AT_EACCESS) == nil {
			return nil
		}
		if int(st.Uid) != euid {
			return fmt.Errorf("%s: %w (uid %d; owner uid %d, mode %#o)", path, ErrNotWritable, euid, st.Uid, st.Mode&0o7777)
		}
		return fchmod(fd, uint32(st.Mode)&0o7777|0o700)
	})
	if err != nil || st.Mode&0o700 == 0o700 {
		return nothing, err
	}
	mode := uint32(st.Mode) & 0o7777
	return func() {
		_ = fstree.WithFd(d, func(fd int) error {
			var now unix.Stat_t
			if fstree.Fstat(fd, &now) != nil || now.Nlink == 0 {
				return nil
			}
			return fchmod(fd, mode)
		})
	}, nil
}

func fchmod(fd int, mode uint32) error {
	for {
		if err := unix.Fchmod(fd, mode); err != unix.EINTR {
			return err
		}
	}
}
