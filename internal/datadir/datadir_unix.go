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

// Dir is a data directory reached through an open descriptor, which its
// methods act relative to, with the rules of package state's path-based
// functions. It does not own the descriptor, which must stay open while
// the Dir is used.
type Dir struct {
	fd   int
	path string
	// afterLock is a test's hook (see WithAfterLock); nil otherwise.
	afterLock func(path string)
}

// NewDir returns the Dir for fd, an open descriptor of the data directory
// at path. path is used in errors only.
func NewDir(fd int, path string) Dir { return Dir{fd: fd, path: path} }

// WithAfterLock returns d whose TryLock runs f after each successful
// flock of the state lock (with the lock file's path) and before the
// inode check. It is for tests, which replace the lock file inside that
// window; the hook travels with the Dir, so such tests run in parallel.
func (d Dir) WithAfterLock(f func(path string)) Dir {
	d.afterLock = f
	return d
}

// Close closes the descriptor. Use it only on a Dir whose descriptor the
// caller hands over; it drops a lease taken with TryLease.
func (d Dir) Close() error {
	if err := unix.Close(d.fd); err != nil {
		return &fs.PathError{Op: "close", Path: d.path, Err: err}
	}
	return nil
}

// Fd returns the descriptor.
func (d Dir) Fd() int { return d.fd }

// Path returns the path the Dir was made with.
func (d Dir) Path() string { return d.path }

// FileInfo is what fstat said about a state file that was opened.
type FileInfo struct {
	// Dev is the device number of the filesystem holding the file.
	Dev uint64
	// ModTime is the file's modification time.
	ModTime time.Time
}

// StateFile is a state file opened by Dir.OpenState. It is not safe for
// concurrent use; Close it when done.
type StateFile struct {
	fd        int
	dir, name string
}

// OpenState opens the state file without reading it, never opening
// anything but a regular file. A missing file wraps fs.ErrNotExist; a
// symlink or other non-regular file matches ErrNotRegular; every error is
// an *fs.PathError naming the file.
func (d Dir) OpenState() (StateFile, error) {
	return openStateAt(d.fd, d.path, FileName)
}

// Parser parses a state file's bytes (state.Parse). It must copy what it
// keeps: the bytes are a pooled buffer, reused once it returns.
type Parser func(data []byte) error

// Read reads the directory's state file with the rules of state.ReadFile,
// hands its bytes to parse, and returns what fstat said about it (the zero
// FileInfo when fstat itself failed), also alongside a read or parse error.
func (d Dir) Read(parse Parser) (FileInfo, error) {
	return readAt(d.fd, d.path, FileName, parse)
}

// ReadPath is Dir.Read on the full path of a state file.
func ReadPath(path string, parse Parser) (FileInfo, error) {
	return readAt(unix.AT_FDCWD, "", path, parse)
}

func openStateAt(dirfd int, dir, name string) (StateFile, error) {
	var st unix.Stat_t
	// The look needs no descriptor, so a directory holds no state file
	// exactly when it says so, even in a process out of descriptors.
	err := sysat.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err != nil:
		return StateFile{fd: -1}, &fs.PathError{Op: "open", Path: atPath(dir, name), Err: err}
	case sysat.IsSymlink(&st):
		return StateFile{fd: -1}, &fs.PathError{Op: "read state", Path: atPath(dir, name), Err: fmt.Errorf("%w: symlink not followed", ErrNotRegular)}
	case !sysat.IsRegular(&st):
		return StateFile{fd: -1}, NotRegular("read state", atPath(dir, name), &st)
	}
	fd, err := sysat.Openat(dirfd, name, readFlags, 0)
	switch {
	case err == nil:
		return StateFile{fd: fd, dir: dir, name: name}, nil
	case errors.Is(err, unix.ELOOP):
		return StateFile{fd: -1}, &fs.PathError{Op: "read state", Path: atPath(dir, name), Err: fmt.Errorf("%w: symlink not followed", ErrNotRegular)}
	default:
		return StateFile{fd: -1}, &fs.PathError{Op: "open", Path: atPath(dir, name), Err: err}
	}
}

func readAt(dirfd int, dir, name string, parse Parser) (FileInfo, error) {
	f, err := openStateAt(dirfd, dir, name)
	if err != nil {
		return FileInfo{}, err
	}
	defer func() { _ = f.Close() }()
	return f.Read(parse)
}

// Close closes the file. Closing it twice is an error.
func (f StateFile) Close() error {
	if err := unix.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Path: atPath(f.dir, f.name), Err: err}
	}
	return nil
}

// readBufs holds read buffers of MaxFileSize+1 bytes, so that a sweep of
// thousands of state files allocates a few. The Parser copies what it
// keeps.
var readBufs = sync.Pool{New: func() any {
	b := make([]byte, MaxFileSize+1)
	return &b
}}

// Read reads the open state file, a regular file of at most MaxFileSize
// bytes, and hands its bytes to parse. It returns what fstat said about
// the file (the zero FileInfo when fstat failed), also alongside an error.
// A FIFO, device or any other non-regular file matches ErrNotRegular and
// is never read from; parse's errors are wrapped as they are returned;
// every error is an *fs.PathError naming the file.
func (f StateFile) Read(parse Parser) (FileInfo, error) {
	var st unix.Stat_t
	if err := sysat.Fstat(f.fd, &st); err != nil {
		return FileInfo{}, &fs.PathError{Op: "fstat", Path: atPath(f.dir, f.name), Err: err}
	}
	fi := FileInfo{Dev: uint64(st.Dev), ModTime: time.Unix(st.Mtim.Unix())}
	if !sysat.IsRegular(&st) {
		return fi, NotRegular("read state", atPath(f.dir, f.name), &st)
	}
	if st.Size > MaxFileSize {
		return fi, &fs.PathError{Op: "read state", Path: atPath(f.dir, f.name), Err: fmt.Errorf("%w: %d bytes, cap %d", ErrTooLarge, st.Size, MaxFileSize)}
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	// The cap applies to what is read, not only to what fstat said: a file
	// can grow between the two. A read that returns exactly the size fstat
	// gave, and less than asked, has reached the end of a regular file, so
	// the usual file takes one read.
	buf := (*bp)[:MaxFileSize+1]
	n := 0
	for n < len(buf) {
		m, err := sysat.Read(f.fd, buf[n:])
		if err != nil {
			return fi, &fs.PathError{Op: "read", Path: atPath(f.dir, f.name), Err: err}
		}
		n += m
		if m == 0 || (n == int(st.Size) && n < len(buf)) {
			break
		}
	}
	if n > MaxFileSize {
		return fi, &fs.PathError{Op: "read state", Path: atPath(f.dir, f.name), Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxFileSize)}
	}
	if err := parse(buf[:n]); err != nil {
		return fi, &fs.PathError{Op: OpParse, Path: atPath(f.dir, f.name), Err: err}
	}
	return fi, nil
}

// ProbeLease reports whether the lease on the directory is held right now,
// with a non-blocking flock taken and dropped at once on the Dir's own
// descriptor: that descriptor's open file description must be this
// process's alone (not one inherited by or handed to a runner), or the
// probe would drop the lease it holds. It creates nothing. For that
// instant the probe itself holds the lease. An error is an *fs.PathError
// naming the directory.
func (d Dir) ProbeLease() (held bool, err error) { return probeFd(d.fd, d.path) }

// TryLease flocks the Dir's own descriptor without blocking; the lease is
// held until every copy of it is closed. A caller that needs the path to
// still name the directory checks that itself. It returns ErrLocked when
// the lease is held, else an *fs.PathError naming the directory.
func (d Dir) TryLease() error {
	ok, err := tryFlockFd(d.fd)
	if err != nil {
		return &fs.PathError{Op: "lease", Path: d.path, Err: err}
	}
	if !ok {
		return &fs.PathError{Op: "lease", Path: d.path, Err: ErrLocked}
	}
	return nil
}

// ProbeLock reports whether the directory's state lock is held right now,
// with the rules of state.ProbeLock: it creates nothing, a
// missing lock file is not held, a symlink under the lock's name is an
// error matching ErrNotRegular, and a device, socket or directory under
// that name is never opened and reported not held (no writer locks such a
// file: TryLock and LoadAndLock refuse it). A FIFO is opened without
// waiting and probed. For that instant the probe itself holds the lock.
func (d Dir) ProbeLock() (held bool, err error) {
	return probeLockAt(d.fd, d.path, LockFileName)
}

// ProbeLockPath is Dir.ProbeLock on the full path of a lock file.
func ProbeLockPath(path string) (held bool, err error) {
	return probeLockAt(unix.AT_FDCWD, "", path)
}

func probeLockAt(dirfd int, dir, name string) (bool, error) {
	var st unix.Stat_t
	// Looked at before it is opened, so a device node planted under the
	// lock's name is never opened.
	err := sysat.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err != nil:
		return false, &fs.PathError{Op: "probe lock", Path: atPath(dir, name), Err: err}
	case sysat.IsSymlink(&st):
		return false, &fs.PathError{Op: "probe lock", Path: atPath(dir, name), Err: fmt.Errorf("%w: symlink not followed", ErrNotRegular)}
	case !lockable(&st):
		return false, nil
	}
	// Something swapped in after the look is opened read-only without
	// waiting and only flocked, never read: the probe needs no second
	// fstat.
	fd, err := sysat.Openat(dirfd, name, probeLockFlags, 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: atPath(dir, name), Err: err}
	}
	defer unix.Close(fd)
	return probeFd(fd, atPath(dir, name))
}

// DirLock is a state lock taken with Dir.TryLock. It is not safe for
// concurrent use.
type DirLock struct {
	d       Dir
	fd      int
	created bool // TryLock created the lock file
}

// TryLock takes the state lock without waiting, for a collector: it creates
// a missing lock file only while the state file exists, and removes one it
// created if the state turns out gone, so an owner removing its directory
// never finds a lock file it did not expect. A FIFO there is locked
// without being read, as released writers lock it. It returns ErrLocked
// when the lock is held, fs.ErrNotExist when the state is gone,
// ErrNotRegular for another file type, else an *fs.PathError.
func (d Dir) TryLock() (*DirLock, error) {
	fd, created, err := tryLockAt(d.fd, d.path, LockFileName, FileName, d.afterLock)
	if err != nil {
		return nil, err
	}
	l := &DirLock{d: d, fd: fd, created: created}
	if created {
		var st unix.Stat_t
		if err := sysat.Fstatat(d.fd, FileName, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
			return nil, l.gone()
		}
	}
	return l, nil
}

// Read reads the state while the lock is held, as Dir.Read. When the state
// file is gone it removes the lock file if TryLock created it (no writer
// can be between its open and its check of the lock file: the lock is
// still held), releases the lock and returns an error wrapping
// fs.ErrNotExist.
func (l *DirLock) Read(parse Parser) (FileInfo, error) {
	fi, err := l.d.Read(parse)
	if errors.Is(err, fs.ErrNotExist) {
		return fi, l.gone()
	}
	return fi, err
}

// gone removes a lock file this lock created, releases the lock and
// returns the error saying the state file is gone.
func (l *DirLock) gone() error {
	if l.created {
		_ = sysat.Unlinkat(l.d.fd, LockFileName, 0)
	}
	err := &fs.PathError{Op: "lock state", Path: atPath(l.d.path, FileName), Err: errStateGone}
	if rerr := l.Release(); rerr != nil {
		return errors.Join(err, rerr)
	}
	return err
}

// errStateGone wraps fs.ErrNotExist for a collector's lock that finds no
// state file: the directory stopped being a data directory.
var errStateGone = fmt.Errorf("state file is gone: %w", fs.ErrNotExist)

// Release drops the state lock. It is safe to call twice; the second call
// does nothing. An error means the unlock or close failed; the lock is
// dropped when the process exits.
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

// maxLockAttempts bounds the retries of tryLockAt when the lock file is
// replaced again and again under it.
const maxLockAttempts = 8

// tryLockAt takes the state lock lockName relative to dirfd (dir is the
// directory's path, for errors; "" when lockName is a full path and dirfd
// AT_FDCWD) without waiting, and returns its descriptor and whether it
// created the file. With stateName set (a collector) a missing lock file
// is created only while stateName exists; with stateName "" (a writer) it
// is always created. Its errors are TryLock's. afterLock is a test's hook
// between the flock and the inode check.
func tryLockAt(dirfd int, dir, lockName, stateName string, afterLock func(path string)) (int, bool, error) {
	for range maxLockAttempts {
		fd, created, err := openLockAt(dirfd, dir, lockName, stateName)
		if errors.Is(err, errLockRaced) {
			// Another process created the lock file between our look
			// and our create: open the one it made.
			continue
		}
		if err != nil {
			return -1, false, err
		}
		held, err := lockOpened(fd, dirfd, dir, lockName, afterLock)
		if err != nil {
			return -1, false, err
		}
		if held {
			return fd, created, nil
		}
		// The file was replaced under the name after the open: lock the
		// one the name stands for now.
	}
	return -1, false, &fs.PathError{Op: "lock", Path: atPath(dir, lockName), Err: errors.New("lock file replaced on every attempt")}
}

// errLockRaced is openLockAt's "another process created the lock file
// first": tryLockAt tries again.
var errLockRaced = errors.New("lock file created concurrently")

// openLockAt opens the state lock file lockName relative to dirfd,
// creating it when it is missing (as tryLockAt says), and returns its
// descriptor and whether it created the file. It never opens anything
// but a regular file or a FIFO, and never follows a symlink.
func openLockAt(dirfd int, dir, lockName, stateName string) (int, bool, error) {
	var locked unix.Stat_t
	// Looked at before it is opened, so a device node planted under the
	// lock's name is never opened.
	err := sysat.Fstatat(dirfd, lockName, &locked, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && !lockable(&locked) {
		return -1, false, NotRegular("lock", atPath(dir, lockName), &locked)
	}
	fd, created := -1, false
	if err == nil {
		fd, err = sysat.Openat(dirfd, lockName, lockFlags, 0)
	}
	if errors.Is(err, unix.ENOENT) {
		if stateName != "" {
			var st unix.Stat_t
			if serr := sysat.Fstatat(dirfd, stateName, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(serr, unix.ENOENT) {
				return -1, false, &fs.PathError{Op: "lock state", Path: atPath(dir, stateName), Err: errStateGone}
			}
		}
		fd, err = sysat.Openat(dirfd, lockName, createLockFlags, 0o600)
		if errors.Is(err, unix.EEXIST) {
			return -1, false, errLockRaced
		}
		created = err == nil
	}
	if errors.Is(err, unix.ELOOP) {
		return -1, false, &fs.PathError{Op: "lock", Path: atPath(dir, lockName), Err: fmt.Errorf("%w: symlink not followed", ErrNotRegular)}
	}
	if err != nil {
		return -1, false, &fs.PathError{Op: "open", Path: atPath(dir, lockName), Err: err}
	}
	return fd, created, nil
}

// lockOpened flocks fd, the lock file lockName opened relative to dirfd,
// without waiting, and reports whether it holds the lock on the file the
// name still stands for. It closes fd unless it returns true: on an error,
// and when the file was unlinked or replaced under the name (false, nil),
// so that tryLockAt tries again. afterLock is tryLockAt's.
func lockOpened(fd, dirfd int, dir, lockName string, afterLock func(path string)) (bool, error) {
	var locked unix.Stat_t
	if err := sysat.Fstat(fd, &locked); err != nil {
		_ = unix.Close(fd)
		return false, &fs.PathError{Op: "fstat", Path: atPath(dir, lockName), Err: err}
	}
	if !lockable(&locked) {
		_ = unix.Close(fd)
		return false, NotRegular("lock", atPath(dir, lockName), &locked)
	}
	ok, err := tryFlockFd(fd)
	if err != nil || !ok {
		_ = unix.Close(fd)
		if err == nil {
			err = ErrLocked
		}
		return false, &fs.PathError{Op: "lock", Path: atPath(dir, lockName), Err: err}
	}
	if afterLock != nil {
		afterLock(atPath(dir, lockName))
	}
	var named unix.Stat_t
	err = sysat.Fstatat(dirfd, lockName, &named, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && named.Dev == locked.Dev && named.Ino == locked.Ino {
		return true, nil
	}
	// The holder before us unlinked or replaced the file after we had
	// opened it: our lock guards nothing anyone else will ever open.
	_ = unix.Close(fd)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return false, &fs.PathError{Op: "lstat", Path: atPath(dir, lockName), Err: err}
	}
	return false, nil
}

const (
	// readFlags opens a state file for reading. O_NOFOLLOW refuses a
	// symlink; O_NONBLOCK keeps open(2) from waiting for a FIFO's writer;
	// O_NOCTTY keeps a terminal from becoming the collector's.
	readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
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

// lockable reports whether a state lock file of this type is opened and
// flocked: a regular file, or a FIFO. A FIFO is opened without waiting
// (O_NONBLOCK) and is never read or written; released writers lock one as
// they would a file, so refusing it would leave its data directory
// unlockable, hence unreclaimable, while those writers still use it.
// Anything else (device, socket, directory, symlink) is never opened.
func lockable(st *unix.Stat_t) bool {
	return sysat.IsRegular(st) || sysat.IsFIFO(st)
}

// NotRegular is the error for a file of the type st gives at path, where
// a regular file was needed: an *fs.PathError with op, matching
// ErrNotRegular and naming the type found.
func NotRegular(op, path string, st *unix.Stat_t) error {
	return &fs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w: %s", ErrNotRegular, sysat.FileType(uint32(st.Mode)))}
}

// tryFlockFd takes an exclusive flock on fd without blocking. It reports
// false with a nil error when someone else holds it.
func tryFlockFd(fd int) (bool, error) {
	err := sysat.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
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
	if err := sysat.Flock(fd, unix.LOCK_UN); err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: path, Err: os.NewSyscallError("flock", err)}
	}
	return false, nil
}

// TryLockPath takes a writer's state lock at path, a lock file's full
// path, without waiting: the lock file is created when missing. It returns
// the locked descriptor, for ReleaseFd, and TryLock's errors. afterLock
// is nil but in tests (see Dir.WithAfterLock).
func TryLockPath(path string, afterLock func(path string)) (fd int, err error) {
	fd, _, err = tryLockAt(unix.AT_FDCWD, "", path, "", afterLock)
	return fd, err
}

// ReleaseFd drops the flock held on fd and closes it. The description is
// this process's alone (opened O_CLOEXEC), but the explicit unlock also
// drops the lock at once should a fork be in progress.
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
