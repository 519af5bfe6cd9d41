// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/internal/sysat"
)

// openDirAt opens the directory name below parent, never following a
// symlink, as an *os.File named display; its error names display.
func openDirAt(parent *os.File, name, display string) (*os.File, error) {
	fd, err := sysat.Openat(int(parent.Fd()), name, sysat.DirFlags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: display, Err: err}
	}
	return os.NewFile(uintptr(fd), display), nil
}

// dirNames lists dir's entries without moving dir's own offset.
func dirNames(dir *os.File) ([]string, error) {
	r, err := openDirAt(dir, ".", dir.Name())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Readdirnames(-1)
}

// verifyPath returns nil when rel below parent, walked without following
// a symlink, still leads to the directory d, so that the locks on d guard
// the path.
func verifyPath(parent *os.File, rel string, d *os.File) error {
	again, err := fstree.OpenDir(parent, rel)
	if err != nil {
		return fmt.Errorf("verify data directory: %w", err)
	}
	defer again.Close()
	ai, err := again.Stat()
	if err != nil {
		return fmt.Errorf("verify data directory: %w", err)
	}
	di, err := d.Stat()
	if err != nil {
		return fmt.Errorf("verify data directory: %w", err)
	}
	if !os.SameFile(ai, di) {
		return errors.New("verify data directory: path no longer names the directory that was locked")
	}
	return nil
}

func allocated(st *unix.Stat_t) int64 { return int64(st.Blocks) * 512 }

// freedBy is what unlinking the file st describes frees.
func freedBy(st *unix.Stat_t) int64 {
	if st.Nlink > 1 {
		return 0
	}
	return allocated(st)
}

// isGone reports errors that mean the entry is gone, or not a directory.
func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

// isNotEmpty reports rmdir errors that mean something else is in there, or
// it is a mount point: not a failure.
func isNotEmpty(err error) bool {
	return errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EBUSY)
}

// dirOf returns the datadir.Dir view of d, which must stay open meanwhile.
func dirOf(d *os.File, path string) datadir.Dir { return datadir.NewDir(int(d.Fd()), path) }

// makeWritable makes the directory d writable and searchable when this
// user owns it, as released go-microvm's removal does, and returns what
// restores its mode; one it cannot write and does not own gives
// ErrNotWritable.
func makeWritable(d *os.File, path string) (restore func(), err error) {
	fd := int(d.Fd())
	if os.Geteuid() == 0 || sysat.Faccessat(fd, ".", unix.W_OK|unix.X_OK, unix.AT_EACCESS) == nil {
		return func() {}, nil
	}
	var st unix.Stat_t
	if err := sysat.Fstat(fd, &st); err != nil {
		return nil, err
	}
	mode := uint32(st.Mode) & 0o7777
	if int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%s: %w (uid %d; owner uid %d, mode %#o)", path, ErrNotWritable, os.Geteuid(), st.Uid, mode)
	}
	if err := sysat.Fchmod(fd, mode|0o700); err != nil {
		return nil, err
	}
	return func() {
		if !removed(d) {
			_ = sysat.Fchmod(fd, mode)
		}
	}, nil
}

// outOfFiles reports whether err says no descriptor is left: a fact about
// the collector, never about a directory.
func outOfFiles(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}
