// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/state"
)

// ErrNotRegular is returned, wrapped in an error naming the path, when a
// lock file the collector needs is not a regular file (a FIFO, socket,
// device or directory planted under its name). Nothing is waited on or
// read through such a file.
var ErrNotRegular = errors.New("not a regular file")

// testHookStateLocked, when set, runs once Collect holds a data
// directory's state lock, before it checks the lock file and reads the
// state, so tests can change the directory at that instant.
var testHookStateLocked func(path string)

// errStateGone reports that the state file disappeared before the state
// lock was taken: the directory stopped being a candidate.
var errStateGone = errors.New("state file is gone")

// openatMode is openat with a creation mode, retrying on EINTR.
func openatMode(dirFd int, name string, flags int, mode uint32) (int, error) {
	var fd int
	err := ignoringEINTR(func() error {
		var err error
		fd, err = unix.Openat(dirFd, name, flags, mode)
		return err
	})
	return fd, err
}

func flockNB(fd int, how int) error {
	return ignoringEINTR(func() error { return unix.Flock(fd, how|unix.LOCK_NB) })
}

func notRegular(path string, st *unix.Stat_t) error {
	return &fs.PathError{Op: "lock", Path: path, Err: fmt.Errorf("%w: %s", ErrNotRegular, fileType(st))}
}

// lockRoot takes root's collector lock without waiting and returns its
// descriptor; closing it releases the lock. It returns an error wrapping
// ErrBusy when another collector holds it, and an error wrapping
// ErrNotRegular, naming the path, when something other than a regular file
// has the lock's name.
//
// The name is looked at before it is opened, so a device node planted
// there is not even opened; the open itself never follows a symlink and
// never waits for a FIFO's writer, and what it opened is checked again.
func lockRoot(root *os.File, abs string) (int, error) {
	path := abs + string(os.PathSeparator) + LockName
	fd := -1
	err := withFd(root, func(rfd int) error {
		var st unix.Stat_t
		if err := fstatat(rfd, LockName, &st); err == nil && !isRegular(&st) {
			return notRegular(path, &st)
		}
		var err error
		fd, err = openatMode(rfd, LockName, rootLockFlags, 0o600)
		if err != nil {
			return &fs.PathError{Op: "open", Path: path, Err: err}
		}
		if err := fstat(fd, &st); err != nil {
			return &fs.PathError{Op: "fstat", Path: path, Err: err}
		}
		if !isRegular(&st) {
			return notRegular(path, &st)
		}
		err = flockNB(fd, unix.LOCK_EX)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("collect %s: %w", abs, ErrBusy)
		}
		if err != nil {
			return &fs.PathError{Op: "lock", Path: path, Err: err}
		}
		return nil
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("lock root: %w", err)
	}
	return fd, nil
}

// lockable reports whether a state lock file of this type can be locked
// safely: a regular file, or a FIFO, which state.LoadAndLock also opens and
// locks (read-write, so without waiting) and which is never read.
func lockable(st *unix.Stat_t) bool {
	return isRegular(st) || st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// stateLock is a data directory's state lock, held through an open file
// description of this process alone: closing it releases the lock.
type stateLock struct {
	fd int
	// created: this collector created the lock file.
	created bool
}

func (l *stateLock) release() {
	if l.fd >= 0 {
		unix.Close(l.fd)
		l.fd = -1
	}
}

// maxLockAttempts bounds the retries of lockStateAt when the lock file is
// replaced again and again under it.
const maxLockAttempts = 8

// lockStateAt takes the state lock of the data directory dirFd (at path)
// without waiting, as state.TryLoadAndLock does, but relative to the
// directory the walk reached, and without ever leaving a lock file behind
// in a directory whose state is gone.
//
// The existing lock file is opened first; only when it is missing, and the
// state file is still there, is it created, exclusively, so the caller
// knows it made it (stateLock.created) and removes it again if the state
// turns out to be gone. A collector that looked at a directory just before
// its owner deleted it thus never brings a lock file back into it, which
// would make the owner's recursive removal fail.
//
// It returns an error wrapping errStateGone when the state file is
// missing, one matching state.ErrLocked when the lock is held, and one
// wrapping ErrNotRegular when the lock's name holds anything but a regular
// file or a FIFO (a FIFO is opened without waiting and never read; writers
// lock it as they would a file, so refusing it would leave an orphan
// unreclaimable). The lock is checked to be the file the name still names (the
// holder before may have unlinked it); if not, it starts over.
func lockStateAt(dirFd int, path string) (*stateLock, error) {
	lockPath := path + string(os.PathSeparator) + state.LockFileName
	for range maxLockAttempts {
		created := false
		var locked unix.Stat_t
		// Looked at before it is opened, so a device node planted under
		// the lock's name is never opened.
		err := fstatat(dirFd, state.LockFileName, &locked)
		if err == nil && !lockable(&locked) {
			return nil, notRegular(lockPath, &locked)
		}
		fd := -1
		if err == nil {
			fd, err = openat(dirFd, state.LockFileName, stateLockFlags)
		}
		if errors.Is(err, unix.ENOENT) {
			var st unix.Stat_t
			if serr := fstatat(dirFd, state.FileName, &st); errors.Is(serr, unix.ENOENT) {
				return nil, errStateGone
			}
			fd, err = openatMode(dirFd, state.LockFileName, stateLockFlags|unix.O_CREAT|unix.O_EXCL, 0o600)
			if errors.Is(err, unix.EEXIST) {
				continue
			}
			created = err == nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: lockPath, Err: err}
		}
		if err := fstat(fd, &locked); err != nil {
			unix.Close(fd)
			return nil, &fs.PathError{Op: "fstat", Path: lockPath, Err: err}
		}
		if !lockable(&locked) {
			unix.Close(fd)
			return nil, notRegular(lockPath, &locked)
		}
		err = flockNB(fd, unix.LOCK_EX)
		if errors.Is(err, unix.EWOULDBLOCK) {
			unix.Close(fd)
			return nil, &fs.PathError{Op: "lock", Path: lockPath, Err: state.ErrLocked}
		}
		if err != nil {
			unix.Close(fd)
			return nil, &fs.PathError{Op: "lock", Path: lockPath, Err: err}
		}
		if testHookStateLocked != nil {
			testHookStateLocked(path)
		}
		var named unix.Stat_t
		err = fstatat(dirFd, state.LockFileName, &named)
		if err == nil && named.Dev == locked.Dev && named.Ino == locked.Ino {
			return &stateLock{fd: fd, created: created}, nil
		}
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, &fs.PathError{Op: "lstat", Path: lockPath, Err: err}
		}
	}
	return nil, &fs.PathError{Op: "lock", Path: lockPath, Err: errors.New("lock file replaced on every attempt")}
}

// loadLocked reads the state of the data directory dirFd (at path) while l
// is held. When the state file is gone it removes the lock file if this
// collector created it (the lock is still held, so no writer is between
// its open and its check), releases the lock and returns errStateGone.
func loadLocked(dirFd int, path string, l *stateLock, buf []byte) (*state.State, unix.Stat_t, error) {
	var st unix.Stat_t
	statePath := path + string(os.PathSeparator) + state.FileName
	sfd, err := openStateAt(dirFd, statePath)
	if errors.Is(err, fs.ErrNotExist) {
		if l.created {
			_ = ignoringEINTR(func() error { return unix.Unlinkat(dirFd, state.LockFileName, 0) })
		}
		l.release()
		return nil, st, errStateGone
	}
	if err != nil {
		return nil, st, err
	}
	defer unix.Close(sfd)
	s, err := readState(sfd, statePath, &st, buf)
	return s, st, err
}
