// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
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

// bare returns the facts every candidate has: the boot and the time.
func (ob *observer) bare() Facts {
	return Facts{BootID: ob.bootID, BootTime: ob.bootTime, Now: ob.now()}
}

func newObserver(now func() time.Time) *observer {
	// A boot fact the kernel does not give is left unknown: Classify then
	// relies on the other evidence and never decides "rebooted" from it.
	id, _ := procinfo.BootID()
	bt, _ := procinfo.BootTime()
	return &observer{bootID: id, bootTime: bt, now: now}
}

// probeMode says which probes observeAt makes.
type probeMode int

const (
	// probeAll finds the true class: the lease is probed for every
	// candidate, so a held lease shows as live whatever the state says.
	probeAll probeMode = iota
	// probeOrphans probes only what can change a would-be orphan's
	// verdict: a candidate that cannot be an orphan whatever the locks
	// say (inactive without WithStopped, no PID, unreadable, a runner
	// that matches) is classified from its state alone, without the
	// open and flocks of the probes.
	probeOrphans
)

// observeAt gathers the facts about the data directory dirFd (at path)
// whose state file the walk opened as stateFd (closed here), without
// changing anything, and returns them with the state file's device number
// (0 when it could not be read).
//
// It reads and probes through the descriptors the walk opened, with the
// same rules as state.ReadFile, state.ProbeLease and state.ProbeLock (no
// symlink followed, no FIFO waited on, the size capped, nothing created),
// so what it sees is the directory the walk reached, and no path is
// resolved again. Raw descriptors keep it to the syscalls that matter: a
// scan is bounded by their number. The lease is probed on the walk's own
// descriptor of the directory: a non-blocking flock and an unlock on an
// open file description no other process shares.
//
// The state file is read before the probes: a creator takes the lease
// before it sets the marker, so a marker read first and a lease found free
// afterwards cannot be a run that is just starting. When the marker is
// set the lease alone decides, so /proc is not read. p is the policy the
// facts will be classified with.
func (ob *observer) observeAt(dirFd, stateFd int, path string, p Policy, mode probeMode, buf []byte) (f Facts, dev uint64) {
	statePath := path + string(os.PathSeparator) + state.FileName
	var st unix.Stat_t
	f.State, f.StateErr = readState(stateFd, statePath, &st, buf)
	unix.Close(stateFd)
	dev = uint64(st.Dev)
	if st.Mode != 0 {
		f.StateModTime = modTime(&st)
	}
	f.BootID, f.BootTime, f.Now = ob.bootID, ob.bootTime, ob.now()
	if f.StateErr != nil && mode == probeOrphans {
		// Unreadable whatever the locks say.
		return f, dev
	}

	marked := f.State != nil && f.State.Leased
	if mode == probeAll || marked {
		if f.LeaseHeld, f.LeaseErr = probeFlock(dirFd, path); f.LeaseHeld || f.LeaseErr != nil {
			// Classify looks no further.
			return f, dev
		}
	}
	ob.lookupProcess(&f)
	if c, _, _ := Classify(f, p); c != ClassOrphan {
		return f, dev
	}
	if mode == probeOrphans && !marked {
		if f.LeaseHeld, f.LeaseErr = probeFlock(dirFd, path); f.LeaseHeld || f.LeaseErr != nil {
			return f, dev
		}
	}
	// A held state lock turns only an orphan into busy; any other verdict
	// keeps the directory all the same. So the lock, an open and two
	// flocks, is probed only for would-be orphans, and a kept directory
	// whose lock happens to be held is reported with its other verdict.
	f.LockHeld, f.LockErr = probeLockAt(dirFd, path+string(os.PathSeparator)+state.LockFileName)
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
// parsed by state.Parse. It fills st when it could stat the file. buf is
// scratch space of at least state.MaxFileSize+1 bytes (see stateBuf).
//
// The type is checked before anything is read, so a FIFO or device opened
// (without blocking) under the state file's name is never read from.
func readState(fd int, path string, st *unix.Stat_t, buf []byte) (*state.State, error) {
	if err := fstat(fd, st); err != nil {
		*st = unix.Stat_t{}
		return nil, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	if !isRegular(st) {
		return nil, &fs.PathError{Op: "read state", Path: path, Err: fmt.Errorf("%w: mode %s", state.ErrNotRegular, fileType(st))}
	}
	if st.Size > state.MaxFileSize {
		return nil, &fs.PathError{Op: "read state", Path: path, Err: fmt.Errorf("%w: %d bytes, cap %d", state.ErrTooLarge, st.Size, state.MaxFileSize)}
	}
	// The cap applies to what is read, not only to what fstat said: a file
	// can grow between the two. A read that returns exactly the size fstat
	// gave, and less than asked, has reached the end of a regular file, so
	// the usual file takes one read.
	buf = buf[:state.MaxFileSize+1]
	n := 0
	for n < len(buf) {
		var m int
		err := ignoringEINTR(func() error {
			var err error
			m, err = unix.Read(fd, buf[n:])
			return err
		})
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		n += m
		if m == 0 || (n == int(st.Size) && n < len(buf)) {
			break
		}
	}
	if n > state.MaxFileSize {
		return nil, &fs.PathError{Op: "read state", Path: path, Err: fmt.Errorf("%w: more than %d bytes", state.ErrTooLarge, state.MaxFileSize)}
	}
	s, err := state.Parse(buf[:n])
	if err != nil {
		return nil, &fs.PathError{Op: "parse state", Path: path, Err: err}
	}
	return s, nil
}

// stateBufs holds read buffers for state files, so that a sweep of
// thousands of candidates allocates a few.
var stateBufs = sync.Pool{New: func() any {
	b := make([]byte, state.MaxFileSize+1)
	return &b
}}

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
	if _, _, _, decided := classifyBoot(*f); decided {
		// A record from an earlier boot says nothing about this boot's
		// process with that PID.
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
