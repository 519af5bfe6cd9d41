// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// Dir is a data directory reached through an open descriptor it does not
// own, which must stay open while the Dir is used.
type Dir struct {
	fd        int
	path      string // for errors
	afterLock func(path string)
}

// NewDir returns the Dir for fd, the open data directory at path.
func NewDir(fd int, path string) Dir { return Dir{fd: fd, path: path} }

// WithAfterLock returns d whose TryLock passes f, a test's hook, to Lock.
func (d Dir) WithAfterLock(f func(path string)) Dir {
	d.afterLock = f
	return d
}

// FileInfo is what fstat said about a state file.
type FileInfo struct {
	Dev     uint64 // device of the filesystem holding the file
	ModTime time.Time
}

// StateFile is an open state file, not safe for concurrent use.
type StateFile struct {
	fd   int
	path string
}

// Parser parses a state file's bytes (state.Parse); it must copy what it
// keeps.
type Parser func(data []byte) error

// OpenState opens the state file without reading it, never opening
// anything but a regular file. A missing file wraps fs.ErrNotExist, a
// symlink or other type matches ErrNotRegular; every error is an
// *fs.PathError naming the file.
func (d Dir) OpenState() (StateFile, error) {
	return openState(d.fd, FileName, atPath(d.path, FileName))
}

// Read opens and reads the state file as StateFile.Read.
func (d Dir) Read(parse Parser) (FileInfo, error) {
	return readAt(d.fd, FileName, atPath(d.path, FileName), parse)
}

// ReadPath is Dir.Read on the full path of a state file.
func ReadPath(path string, parse Parser) (FileInfo, error) {
	return readAt(unix.AT_FDCWD, path, path, parse)
}

func openState(dirfd int, name, path string) (StateFile, error) {
	fd, err := OpenAt(dirfd, name, path, "read state", unix.O_RDONLY, sysat.IsRegular)
	return StateFile{fd: fd, path: path}, err
}

func readAt(dirfd int, name, path string, parse Parser) (FileInfo, error) {
	f, err := openState(dirfd, name, path)
	if err != nil {
		return FileInfo{}, err
	}
	defer func() { _ = f.Close() }()
	return f.Read(parse)
}

// Close closes the file; a second Close is an error.
func (f StateFile) Close() error {
	if err := unix.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}

var readBufs = sync.Pool{New: func() any {
	b := make([]byte, MaxFileSize+1)
	return &b
}}

// Read hands the bytes of the open state file, a regular file of at most
// MaxFileSize bytes, to parse, and returns what fstat said (zero when it
// failed), also beside an error. Another file type matches ErrNotRegular
// and is never read; every error is an *fs.PathError naming the file,
// wrapping parse's.
func (f StateFile) Read(parse Parser) (FileInfo, error) {
	var st unix.Stat_t
	if err := sysat.Fstat(f.fd, &st); err != nil {
		return FileInfo{}, &fs.PathError{Op: "fstat", Path: f.path, Err: err}
	}
	fi := FileInfo{Dev: uint64(st.Dev), ModTime: time.Unix(st.Mtim.Unix())}
	if !sysat.IsRegular(&st) {
		return fi, NotRegular("read state", f.path, &st)
	}
	if st.Size > MaxFileSize {
		return fi, tooLarge(f.path)
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	// The file may grow after fstat: the cap holds for what is read.
	buf, n := *bp, 0
	for n < len(buf) {
		m, err := sysat.Read(f.fd, buf[n:])
		if err != nil {
			return fi, &fs.PathError{Op: "read", Path: f.path, Err: err}
		}
		n += m
		if m == 0 || n == int(st.Size) {
			break
		}
	}
	if n > MaxFileSize {
		return fi, tooLarge(f.path)
	}
	if err := parse(buf[:n]); err != nil {
		return fi, &fs.PathError{Op: OpParse, Path: f.path, Err: err}
	}
	return fi, nil
}

func tooLarge(path string) error {
	return &fs.PathError{Op: "read state", Path: path, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxFileSize)}
}

// ProbeLease reports whether the lease is held, taking and dropping a
// non-blocking flock on the Dir's descriptor, whose open file description
// must be this process's alone. An error is an *fs.PathError.
func (d Dir) ProbeLease() (held bool, err error) { return probeFd(d.fd, d.path) }

// TryLease flocks the Dir's descriptor without blocking, not checking that
// the path still names the directory: ErrLocked when the lease is held,
// else an *fs.PathError.
func (d Dir) TryLease() error { return tryFlock(d.fd, d.path) }

// TryLeasePath takes the lease on the directory at path with Lock and
// returns its descriptor. A missing directory wraps fs.ErrNotExist.
func TryLeasePath(path string, afterLock func(path string)) (int, error) {
	return Lock(unix.AT_FDCWD, path, path, nil, afterLock, func() (int, error) {
		fd, err := sysat.Openat(unix.AT_FDCWD, path, sysat.DirFlags, 0)
		if err != nil {
			return -1, &fs.PathError{Op: "open lease directory", Path: path, Err: err}
		}
		return fd, nil
	})
}

// ProbeLock reports whether the state lock is held, creating nothing: a
// missing lock file is not held, a symlink matches ErrNotRegular, a type
// no writer locks is not held, a FIFO is probed without waiting.
func (d Dir) ProbeLock() (held bool, err error) {
	path := atPath(d.path, LockFileName)
	var unlocked bool // a type no writer locks, and not a symlink
	// Whatever is swapped in after the lstat is only flocked, never read.
	fd, err := OpenAt(d.fd, LockFileName, path, "probe lock", unix.O_RDONLY, func(st *unix.Stat_t) bool {
		unlocked = !lockable(st) && !sysat.IsSymlink(st)
		return lockable(st)
	})
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrNotRegular) && unlocked:
		return false, nil
	case err != nil:
		return false, err
	}
	defer unix.Close(fd)
	return probeFd(fd, path)
}

// DirLock is a held state lock, not safe for concurrent use.
type DirLock struct {
	d       Dir
	fd      int
	created bool // TryLock created the lock file
}

// TryLock takes the state lock without waiting, for a collector. It
// creates a missing lock file only while the state file exists, and
// removes one it created if the state is gone, so an owner removing its
// directory never meets a lock file it did not expect. A FIFO is locked,
// never read, as released writers lock it. Errors: ErrLocked when held,
// fs.ErrNotExist when the state is gone, ErrNotRegular for another file
// type, else an *fs.PathError.
func (d Dir) TryLock() (*DirLock, error) {
	l := &DirLock{d: d}
	path := atPath(d.path, LockFileName)
	fd, err := lockState(d.fd, LockFileName, path, d.path, &l.created, d.afterLock)
	if err != nil {
		return nil, err
	}
	l.fd = fd
	var st unix.Stat_t
	if l.created && errors.Is(sysat.Fstatat(d.fd, FileName, &st, unix.AT_SYMLINK_NOFOLLOW), unix.ENOENT) {
		return nil, l.gone()
	}
	return l, nil
}

// TryLockPath takes a writer's state lock at the lock file's path without
// waiting, creating a missing file, and returns the descriptor for
// ReleaseFd. Its errors are TryLock's; afterLock is nil but in tests.
func TryLockPath(path string, afterLock func(path string)) (int, error) {
	return lockState(unix.AT_FDCWD, path, path, "", new(bool), afterLock)
}

// Read reads the state as Dir.Read. When the state file is gone it removes
// the lock file TryLock created (no writer can be between its open and its
// check: the lock is held), releases the lock and wraps fs.ErrNotExist.
func (l *DirLock) Read(parse Parser) (FileInfo, error) {
	fi, err := l.d.Read(parse)
	if errors.Is(err, fs.ErrNotExist) {
		return fi, l.gone()
	}
	return fi, err
}

func (l *DirLock) gone() error {
	if l.created {
		_ = sysat.Unlinkat(l.d.fd, LockFileName, 0)
	}
	return errors.Join(stateGone(atPath(l.d.path, FileName)), l.Release())
}

func stateGone(path string) error {
	return &fs.PathError{Op: "lock state", Path: path, Err: fmt.Errorf("state file is gone: %w", fs.ErrNotExist)}
}

// Release drops the state lock; a second call does nothing. An error means
// the unlock or close failed; the lock goes when the process exits.
func (l *DirLock) Release() error {
	if l.fd < 0 {
		return nil
	}
	fd := l.fd
	l.fd = -1
	if err := ReleaseFd(fd); err != nil {
		return &fs.PathError{Op: "unlock", Path: atPath(l.d.path, LockFileName), Err: err}
	}
	return nil
}

// lockState takes the state lock name in dirfd as TryLock (dir, the data
// directory's path, set) or TryLockPath says; *created says whether it
// created the file.
func lockState(dirfd int, name, path, dir string, created *bool, afterLock func(string)) (int, error) {
	check := func(st *unix.Stat_t) error {
		if !lockable(st) {
			return NotRegular("lock", path, st)
		}
		return nil
	}
	return Lock(dirfd, name, path, check, afterLock, func() (int, error) {
		*created = false
		fd, err := OpenAt(dirfd, name, path, "lock", lockFlags, lockable)
		if !errors.Is(err, fs.ErrNotExist) {
			return fd, err
		}
		var st unix.Stat_t
		if dir != "" && errors.Is(sysat.Fstatat(dirfd, FileName, &st, unix.AT_SYMLINK_NOFOLLOW), unix.ENOENT) {
			return -1, stateGone(atPath(dir, FileName))
		}
		fd, err = OpenAt(dirfd, name, path, "lock", lockFlags|unix.O_CREAT|unix.O_EXCL, lockable)
		*created = err == nil
		return fd, err
	})
}

// Lock flocks without waiting the file open opens as name in dirfd (path,
// for errors), once check (nil: none) accepts its fstat, and returns its
// descriptor once name still names the file locked. It opens again while
// the file is replaced, or open fails with fs.ErrExist, a few times (then
// ErrReplaced), and unlocks and closes every descriptor it does not
// return. A held lock is ErrLocked; other errors are open's, check's or an
// *fs.PathError. afterLock is nil but in tests: it runs after the flock.
func Lock(dirfd int, name, path string, check func(*unix.Stat_t) error, afterLock func(path string), open func() (int, error)) (int, error) {
	for range 8 {
		fd, err := open()
		if errors.Is(err, fs.ErrExist) {
			continue // created by another process since open looked
		}
		if err != nil {
			return -1, err
		}
		var locked, named unix.Stat_t
		err = sysat.Fstat(fd, &locked)
		switch {
		case err != nil:
			err = &fs.PathError{Op: "fstat", Path: path, Err: err}
		case check != nil:
			err = check(&locked)
		}
		if err == nil {
			err = tryFlock(fd, path)
		}
		if err != nil {
			_ = unix.Close(fd)
			return -1, err
		}
		if afterLock != nil {
			afterLock(path)
		}
		err = sysat.Fstatat(dirfd, name, &named, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && named.Dev == locked.Dev && named.Ino == locked.Ino {
			return fd, nil
		}
		// Unlocked, not only closed: a child forked meanwhile holds a copy
		// of fd until its exec.
		_ = ReleaseFd(fd)
		if err != nil && err != unix.ENOENT {
			return -1, &fs.PathError{Op: "lstat", Path: path, Err: err}
		}
	}
	return -1, &fs.PathError{Op: "lock", Path: path, Err: ErrReplaced}
}

// OpenAt opens name in dirfd (path, for errors) with flags, never
// following a symlink nor waiting for a FIFO's writer, once an lstat shows
// a type ok accepts, or nothing with O_CREAT (mode 0600). A missing file
// wraps fs.ErrNotExist; a symlink or another type matches ErrNotRegular
// (for op) and is never opened. Every error is an *fs.PathError.
func OpenAt(dirfd int, name, path, op string, flags int, ok func(*unix.Stat_t) bool) (int, error) {
	var st unix.Stat_t
	// Looking first needs no descriptor, so a process out of them still
	// sees a missing file as missing.
	err := sysat.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT && flags&unix.O_CREAT != 0:
		// Created below, unless made meanwhile.
	case err != nil:
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	case !ok(&st):
		return -1, NotRegular(op, path, &st)
	}
	fd, err := sysat.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o600)
	if err == unix.ELOOP {
		return -1, &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w: symlink", ErrNotRegular)}
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// lockFlags: O_RDWR as released go-microvm opens the lock, for flock
// emulations that need a writable descriptor (NFS).
const lockFlags = unix.O_RDWR

func atPath(dir, name string) string { return dir + string(os.PathSeparator) + name }

// lockable: released writers lock a FIFO as a file, so refusing one would
// leave its data directory unreclaimable while they use it.
func lockable(st *unix.Stat_t) bool { return sysat.IsRegular(st) || sysat.IsFIFO(st) }

// NotRegular is the *fs.PathError matching ErrNotRegular for a file of
// st's type at path.
func NotRegular(op, path string, st *unix.Stat_t) error {
	return &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w: %s", ErrNotRegular, sysat.FileType(uint32(st.Mode)))}
}

func tryFlock(fd int, path string) error {
	err := sysat.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		return &fs.PathError{Op: "lock", Path: path, Err: ErrLocked}
	}
	if err != nil {
		return &fs.PathError{Op: "lock", Path: path, Err: os.NewSyscallError("flock", err)}
	}
	return nil
}

// probeFd takes and drops a flock on fd's own open file description, which
// must be this process's alone.
func probeFd(fd int, path string) (held bool, err error) {
	if err := tryFlock(fd, path); errors.Is(err, ErrLocked) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	if err := sysat.Flock(fd, unix.LOCK_UN); err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: path, Err: os.NewSyscallError("flock", err)}
	}
	return false, nil
}

// ReleaseFd unlocks and closes fd; the explicit unlock drops the lock at
// once even while a fork holds a copy of fd.
func ReleaseFd(fd int) error {
	uerr := sysat.Flock(fd, unix.LOCK_UN)
	cerr := unix.Close(fd)
	if uerr != nil {
		return os.NewSyscallError("flock", uerr)
	}
	if cerr != nil {
		return os.NewSyscallError("close", cerr)
	}
	return nil
}
