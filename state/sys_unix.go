// SPDX-License-Identifier: Apache-2.0

//go:build unix

package state

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

const (
	// readFlags opens a state file for reading. O_NOFOLLOW refuses a
	// symlink; O_NONBLOCK keeps open(2) from waiting for a FIFO's writer.
	readFlags = os.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	// lockFlags opens (creating if needed) the state lock file. Read-write
	// as released go-microvm does, so flock emulations that need a
	// writable descriptor still work.
	lockFlags = os.O_CREATE | os.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC
	// probeLockFlags opens an existing state lock file without creating
	// or following anything, and without waiting if it is a FIFO.
	probeLockFlags = os.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	// dirFlags opens a data directory for the lease or its probe.
	dirFlags = os.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
)

// isSymlinkRefused reports whether err is what open(2) returns when
// O_NOFOLLOW met a symlink as the last path component.
func isSymlinkRefused(err error) bool {
	return errors.Is(err, unix.ELOOP)
}

// tryFlock takes an exclusive flock on f without blocking. It reports false
// with a nil error when someone else holds it.
func tryFlock(f *os.File) (bool, error) {
	conn, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var ferr error
	if err := conn.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return false, err
	}
	switch {
	case ferr == nil:
		return true, nil
	case errors.Is(ferr, unix.EWOULDBLOCK):
		return false, nil
	default:
		return false, os.NewSyscallError("flock", ferr)
	}
}

// unlockFlock drops the flock on f's open file description. Only probes
// call it: a probe's descriptor is never shared with another process.
func unlockFlock(f *os.File) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := conn.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), unix.LOCK_UN)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if ferr != nil {
		return os.NewSyscallError("flock", ferr)
	}
	return nil
}
