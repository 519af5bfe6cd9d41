// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/fstree"
)

const (
	// readFlags opens a state file for reading. O_NOFOLLOW refuses a
	// symlink; O_NONBLOCK keeps open(2) from waiting for a FIFO's writer.
	readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	// lockFlags opens an existing state lock file. Read-write as released
	// go-microvm does, so flock emulations that need a writable descriptor
	// (NFS) still work; O_NONBLOCK so that a FIFO under the name never
	// makes open(2) wait.
	lockFlags = unix.O_RDWR | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	// createLockFlags creates the state lock file, failing if something
	// got there first, so the caller knows whether it made the file.
	createLockFlags = lockFlags | unix.O_CREAT | unix.O_EXCL
	// probeLockFlags opens an existing state lock file without creating
	// or following anything, and without waiting if it is a FIFO.
	probeLockFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	// dirFlags opens a data directory for the lease or its probe.
	dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
)

// atPath joins a directory's path and a name in it for errors. The
// path-based entry points pass an empty dir and a full path as name,
// which openat(AT_FDCWD, name) resolves as open(2) would.
func atPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + string(os.PathSeparator) + name
}

func isRegular(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFREG }

func isSymlink(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFLNK }

// lockable reports whether a state lock file of this type is opened and
// flocked: a regular file, or a FIFO. A FIFO is opened without waiting
// (O_NONBLOCK) and is never read or written; released writers lock one as
// they would a file, so refusing it would leave its data directory
// unlockable, hence unreclaimable, while those writers still use it.
// Anything else (device, socket, directory, symlink) is never opened.
func lockable(st *unix.Stat_t) bool {
	return isRegular(st) || st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// notRegular is the error for a file of the wrong type at path.
func notRegular(op, path string, st *unix.Stat_t) error {
	return &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w: %s", ErrNotRegular, fstree.FileType(uint32(st.Mode)))}
}

// tryFlockFd takes an exclusive flock on fd without blocking. It reports
// false with a nil error when someone else holds it.
func tryFlockFd(fd int) (bool, error) {
	err := fstree.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		return false, nil
	default:
		return false, os.NewSyscallError("flock", err)
	}
}

// probeFd reports whether someone else holds an exclusive flock on the
// inode fd is open on, taking and dropping it at once on fd's own open
// file description: for that instant a concurrent try-lock sees it held.
// fd's description must not be shared with another process, or the unlock
// would drop that process's lock.
func probeFd(fd int, path string) (held bool, err error) {
	ok, err := tryFlockFd(fd)
	if err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: path, Err: err}
	}
	if !ok {
		return true, nil
	}
	if err := fstree.Flock(fd, unix.LOCK_UN); err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: path, Err: os.NewSyscallError("flock", err)}
	}
	return false, nil
}

// heldLock is a held state lock: its descriptor.
type heldLock = int

// tryLockPath takes a writer's state lock at path without waiting (see
// tryLockAt).
func tryLockPath(path string) (heldLock, error) {
	fd, _, err := tryLockAt(unix.AT_FDCWD, "", path, "")
	return fd, err
}

// unlockHeld drops a lock taken with tryLockPath.
func unlockHeld(fd heldLock) error { return releaseFd(fd) }

// readPath is ReadFile.
func readPath(path string) (*State, error) {
	s, _, err := readAt(unix.AT_FDCWD, "", path)
	return s, err
}

// releaseFd drops the flock held on fd and closes it. The description is
// this process's alone (opened O_CLOEXEC), but the explicit unlock also
// drops the lock at once should a fork be in progress.
func releaseFd(fd int) error {
	uerr := fstree.Flock(fd, unix.LOCK_UN)
	cerr := unix.Close(fd)
	if uerr != nil {
		return os.NewSyscallError("flock", uerr)
	}
	if cerr != nil {
		return os.NewSyscallError("close", cerr)
	}
	return nil
}

// syncDir flushes a directory's entries, making a rename or unlink in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		// The error being returned is the one that matters.
		_ = d.Close()
		return err
	}
	return d.Close()
}
