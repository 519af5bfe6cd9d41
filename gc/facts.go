// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// observer gathers Facts. The boot facts are read once per sweep: they
// cannot change while this process runs.
type observer struct {
	bootID   string
	bootTime time.Time
	now      func() time.Time
}

func newObserver(now func() time.Time) *observer {
	// A boot fact the kernel does not give is left unknown: Classify then
	// relies on the other evidence and never decides "rebooted" from it.
	id, _ := procinfo.BootID()
	bt, _ := procinfo.BootTime()
	return &observer{bootID: id, bootTime: bt, now: now}
}

// observeAt gathers the facts about the data directory fd.dir (at path)
// without changing anything, and returns them with the device number of
// the directory.
//
// It reads and probes through the descriptors the walk opened, with the
// same rules as state.ReadFile, state.ProbeLease and state.ProbeLock (no
// symlink followed, no FIFO waited on, the size capped, nothing created),
// so what it sees is the directory the walk reached, and no path is
// resolved again. Raw descriptors keep it to the syscalls that matter: a
// scan is bounded by their number.
//
// The state file is read before the probes: a creator takes the lease
// before it sets the marker, so a marker read first and a lease found free
// afterwards cannot be a run that is just starting. p is the policy the
// facts will be classified with.
func (ob *observer) observeAt(fd foundDir, path string, p Policy) (f Facts, dev uint64) {
	statePath := path + string(os.PathSeparator) + state.FileName
	var st unix.Stat_t
	if fd.stateErr != nil {
		f.StateErr = fd.stateErr
		if err := fstat(fd.dir, &st); err == nil {
			dev = uint64(st.Dev)
		}
	} else {
		f.State, f.StateErr = readState(fd.stateFd, statePath, &st)
		dev = uint64(st.Dev)
		f.StateModTime = modTime(&st)
	}
	f.BootID, f.BootTime, f.Now = ob.bootID, ob.bootTime, ob.now()

	f.LeaseHeld, f.LeaseErr = probeFlock(fd.dir, path)
	if f.LeaseHeld || f.LeaseErr != nil {
		// Classify looks no further.
		return f, dev
	}
	ob.lookupProcess(&f)
	// A held state lock turns only an orphan into busy; any other verdict
	// keeps the directory all the same. So the lock, an open and two
	// flocks, is probed only for would-be orphans, and a kept directory
	// whose lock happens to be held is reported with its other verdict.
	if c, _, _ := Classify(f, p); c == ClassOrphan {
		f.LockHeld, f.LockErr = probeLockAt(fd.dir, path+string(os.PathSeparator)+state.LockFileName)
	}
	return f, dev
}

// stateOpenFlags open a state file as state.ReadFile does: O_NOFOLLOW
// refuses a symlink, O_NONBLOCK keeps open(2) from waiting for a FIFO's
// writer.
const stateOpenFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// openStateAt opens the state file in the directory dirFd as
// state.ReadFile would. A missing file is an error matching
// fs.ErrNotExist; a symlink is state.ErrNotRegular.
func openStateAt(dirFd int, path string) (int, error) {
	fd, err := openat(dirFd, state.FileName, stateOpenFlags)
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.ELOOP):
		return -1, &fs.PathError{Op: "read state", Path: path, Err: fmt.Errorf("%w: symlink not followed", state.ErrNotRegular)}
	default:
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
}

// readState reads and parses the open state file fd with the checks of
// state.ReadFile: a regular file of at most state.MaxFileSize bytes,
// parsed by state.Parse. It fills st when it could stat the file.
func readState(fd int, path string, st *unix.Stat_t) (*state.State, error) {
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, st) }); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if !isRegular(st) {
		return nil, &fs.PathError{Op: "read state", Path: path, Err: fmt.Errorf("%w: mode %s", state.ErrNotRegular, fileType(st))}
	}
	if st.Size > state.MaxFileSize {
		return nil, &fs.PathError{Op: "read state", Path: path, Err: fmt.Errorf("%w: %d bytes, cap %d", state.ErrTooLarge, st.Size, state.MaxFileSize)}
	}
	// The cap applies to what is read, not only to what fstat said: a file
	// can grow between the two.
	buf := make([]byte, st.Size+1)
	n := 0
	for {
		if n == len(buf) {
			if len(buf) > state.MaxFileSize {
				return nil, &fs.PathError{Op: "read state", Path: path, Err: fmt.Errorf("%w: more than %d bytes", state.ErrTooLarge, state.MaxFileSize)}
			}
			buf = append(buf, make([]byte, min(len(buf), state.MaxFileSize+1-len(buf)))...)
		}
		var m int
		err := ignoringEINTR(func() error {
			var err error
			m, err = unix.Read(fd, buf[n:])
			return err
		})
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	s, err := state.Parse(buf[:n])
	if err != nil {
		return nil, &fs.PathError{Op: "parse state", Path: path, Err: err}
	}
	return s, nil
}

// probeFlock reports whether someone else holds an exclusive flock on the
// inode fd is open on, taking and dropping it at once on fd's own open file
// description (for that instant a concurrent try-lock sees it held, as with
// state.ProbeLease).
func probeFlock(fd int, path string) (held bool, err error) {
	err = ignoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) })
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if err == nil {
		err = ignoringEINTR(func() error { return unix.Flock(fd, unix.LOCK_UN) })
	}
	if err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: path, Err: err}
	}
	return false, nil
}

// probeLockAt probes the state lock file in the directory dirFd like
// state.ProbeLock: a missing file is not held, nothing is created, a
// symlink is an error.
func probeLockAt(dirFd int, path string) (bool, error) {
	fd, err := openat(dirFd, state.LockFileName, stateOpenFlags)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return probeFlock(fd, path)
}

// lookupProcess fills f.Process when the PID rules will need it.
func (ob *observer) lookupProcess(f *Facts) {
	s := f.State
	if s == nil || s.Leased || !s.Active || s.PID <= 0 {
		return
	}
	info, err := procinfo.Lookup(s.PID)
	switch {
	case errors.Is(err, procinfo.ErrNotExist):
		f.Process = Process{}
	case err != nil:
		f.Process = Process{Exists: true, Err: err}
	default:
		f.Process = Process{
			Exists:     true,
			Zombie:     info.Zombie,
			StartTime:  info.StartTime,
			Started:    info.Started,
			Comm:       info.Comm,
			Executable: info.Executable,
		}
	}
}
