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
	"github.com/stacklok/go-microvm/internal/sysat"
	"github.com/stacklok/go-microvm/state"
)

// dirFlag makes os.OpenFile refuse anything but a directory.
const dirFlag = unix.O_DIRECTORY

// Directories are *os.File, their descriptors passed to sysat as
// int(f.Fd()), as os.RemoveAll does: a directory is never non-blocking.

// openDirAt opens the single component name below parent as a directory,
// never following a symlink, as an *os.File named display: the open and
// the check that it is a directory are one call (O_DIRECTORY), and its
// error is an *fs.PathError naming display.
func openDirAt(parent *os.File, name, display string) (*os.File, error) {
	fd, err := sysat.Openat(int(parent.Fd()), name, sysat.DirFlags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: display, Err: err}
	}
	return os.NewFile(uintptr(fd), display), nil
}

// dirNames lists dir's entries through a new open file description, so
// that the offset of dir itself does not move.
func dirNames(dir *os.File) ([]string, error) {
	r, err := openDirAt(dir, ".", dir.Name())
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Readdirnames(-1)
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

// parseInto returns the datadir.Parser that keeps what state.Parse returns
// in *s.
func parseInto(s **state.State) datadir.Parser {
	return func(data []byte) (err error) {
		*s, err = state.Parse(data)
		return err
	}
}

// dirOf returns the datadir.Dir view of d, which must stay open meanwhile.
func dirOf(d *os.File, path string) datadir.Dir { return datadir.NewDir(int(d.Fd()), path) }

// makeWritable makes the directory d, when this process owns it, writable
// and searchable, and returns the function that restores its mode. One it
// cannot write and does not own gives ErrNotWritable.
func makeWritable(d *os.File, path string) (restore func(), err error) {
	nothing := func() {}
	euid := os.Geteuid()
	if euid == 0 {
		return nothing, nil
	}
	fd := int(d.Fd())
	var st unix.Stat_t
	if err := sysat.Fstat(fd, &st); err != nil {
		return nothing, err
	}
	mode := uint32(st.Mode) & 0o7777
	if sysat.Faccessat(fd, ".", unix.W_OK|unix.X_OK, unix.AT_EACCESS) != nil {
		if int(st.Uid) != euid {
			return nothing, fmt.Errorf("%s: %w (uid %d; owner uid %d, mode %#o)", path, ErrNotWritable, euid, st.Uid, mode)
		}
		if err := sysat.Fchmod(fd, mode|0o700); err != nil {
			return nothing, err
		}
	}
	if mode&0o700 == 0o700 {
		return nothing, nil
	}
	return func() {
		var now unix.Stat_t
		if sysat.Fstat(int(d.Fd()), &now) != nil || now.Nlink == 0 {
			return
		}
		_ = sysat.Fchmod(int(d.Fd()), mode)
	}, nil
}

// outOfFiles reports whether err says this process or the system has no
// descriptor left: a fact about the collector, never about a directory.
func outOfFiles(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE)
}

// scanWorkers is how many goroutines walk a scan of the given depth:
// workers(), fewer when this process has too few descriptors left (a low
// RLIMIT_NOFILE) for each to hold a branch of the walk, since walks that
// each hold part of what the others wait for would starve together; one
// at least.
func scanWorkers(depth int) int {
	n := workers()
	var rl unix.Rlimit
	if n == 1 || unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil || rl.Cur > 1<<20 {
		return n
	}
	d, err := os.Open("/dev/fd")
	if err != nil {
		return n
	}
	names, err := d.Readdirnames(-1)
	_ = d.Close()
	if err != nil {
		return n
	}
	// A walk holds a directory and its listing for each level it lists,
	// then the data directory, its state file or lock, and two
	// descriptors of /proc.
	perWalk := 2*depth + 3
	free := int(rl.Cur) - len(names)
	return max(1, min(n, free/perWalk))
}
