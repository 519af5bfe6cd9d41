// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// ClockTicks is USER_HZ, the unit of /proc/PID/stat field 22. The kernel
// fixes it at 100 on every architecture Go supports without cgo (it is the
// ABI value, independent of the kernel's internal HZ), so it is a constant
// here rather than a sysconf(_SC_CLK_TCK) call, which would need cgo.
const ClockTicks = 100

const tick = time.Second / ClockTicks

// deletedSuffix is what the kernel appends to /proc/PID/exe when the file
// the process was started from has been unlinked or replaced.
const deletedSuffix = " (deleted)"

// maxStatSize bounds the read of /proc/PID/stat and /proc/PID/status: the
// stat line is well under 1 KiB (52 numbers and a comm of at most 64
// bytes), status under 2 KiB.
const maxStatSize = 8192

func lookup(pid int) (Info, error) {
	if pid <= 0 {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, ErrNotExist)
	}
	// kill(2) speaks for this process's PID namespace whatever /proc is:
	// a PID it does not find is gone, and costs no /proc read.
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, ErrNotExist)
	}
	// A /proc that does not show this process may show another PID
	// namespace's processes under the same numbers, or none at all:
	// then kill decides alone.
	if err := checkProc(); err != nil {
		return Info{}, absent(pid, err)
	}
	dir := "/proc/" + strconv.Itoa(pid)
	// Everything is read relative to one descriptor of /proc/PID: it
	// refers to that process, not to the number, so if the process exits
	// and the PID is reused between the reads below, they fail instead of
	// mixing the start time of one process with the executable of another.
	dfd, err := sysat.Openat(unix.AT_FDCWD, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Info{}, lookupErr(pid, "open", dir, err)
	}
	defer unix.Close(dfd)

	st, err := readParsed(dfd, pid, dir, "stat", ParseStat)
	if err != nil {
		return Info{}, err
	}
	if st.PID != pid {
		return Info{}, fmt.Errorf("look up process %d: %s/stat names pid %d", pid, dir, st.PID)
	}
	info, err := startOf(pid, dir, st)
	if err != nil {
		return Info{}, err
	}
	info.Comm = st.Comm
	info.Zombie = zombieState(st.State)
	if st.State == 'Z' {
		// The state is the thread-group leader's: a leader that called
		// pthread_exit is a zombie while its other threads run on. The
		// process is dead only when no other thread is left.
		n, err := readParsed(dfd, pid, dir, "status", statusThreads)
		if err != nil {
			return Info{}, err
		}
		info.Threads = n
		info.Zombie = n <= 1
	}
	readExecutable(dfd, dir, &info)
	info.Argv0 = readArgv0(dfd)
	return info, nil
}

// maxArgv0 bounds the read of /proc/PID/cmdline: argv[0] is a path.
const maxArgv0 = 4096

// readArgv0 returns the first NUL-terminated string of /proc/PID/cmdline,
// read through dfd, or "" when it cannot be read or is not there whole
// within maxArgv0 bytes (a kernel thread or a zombie has none).
func readArgv0(dfd int) string {
	fd, err := sysat.Openat(dfd, "cmdline", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	buf := make([]byte, maxArgv0)
	n, err := sysat.Read(fd, buf)
	if err != nil {
		return ""
	}
	arg, _, ok := bytes.Cut(buf[:n], []byte{0})
	if !ok {
		return ""
	}
	return string(arg)
}

// readParsed reads the file name of the /proc/PID directory dir through
// its descriptor dfd, and parses it; its errors name the file.
func readParsed[T any](dfd, pid int, dir, name string, parse func([]byte) (T, error)) (T, error) {
	var v T
	data, err := readAt(dfd, name)
	if err != nil {
		return v, lookupErr(pid, "read", dir+"/"+name, err)
	}
	v, err = parse(data)
	if err != nil {
		return v, fmt.Errorf("look up process %d: %s/%s: %w", pid, dir, name, err)
	}
	return v, nil
}

// startOf returns the Info of pid with its identity from st, the parse of
// dir/stat: the start time as the host's kernel counts it, and as
// wall-clock time.
func startOf(pid int, dir string, st Stat) (Info, error) {
	boot, err := bootTime()
	if err != nil {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, err)
	}
	if st.StartTime > math.MaxInt64/uint64(tick) {
		return Info{}, fmt.Errorf("look up process %d: %s/stat: start time %d out of range", pid, dir, st.StartTime)
	}
	// The start time shown is shifted by the reader's time namespace
	// (as is the boot time); the identity recorded is the host's, the
	// same whoever reads it.
	off, err := bootOffset()
	if err != nil {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, err)
	}
	hostStart := int64(st.StartTime) - off
	if hostStart < 0 {
		return Info{}, fmt.Errorf("look up process %d: %s/stat: start time %d before the boottime offset %d", pid, dir, st.StartTime, off)
	}
	return Info{
		PID:       pid,
		StartTime: uint64(hostStart),
		Started:   boot.Add(time.Duration(hostStart) * tick),
	}, nil
}

// readExecutable fills info's executable from the link dir/exe, read
// through dfd, or says in info.ExecutableErr why it cannot: another
// user's process, or a kernel thread, has none to show.
func readExecutable(dfd int, dir string, info *Info) {
	exe, err := readlinkat(dfd, "exe")
	switch {
	case err != nil:
		info.ExecutableErr = &os.PathError{Op: "readlink", Path: dir + "/exe", Err: err}
	case !strings.HasPrefix(exe, "/"):
		info.ExecutableErr = fmt.Errorf("readlink %s/exe: %q is not an absolute path", dir, exe)
	default:
		info.Executable, info.ExecutableDeleted = strings.CutSuffix(exe, deletedSuffix)
	}
}

// lookupErr wraps err. ENOENT for /proc/PID, or ESRCH for a read after
// the process was reaped, is not taken for death on its own: kill(2)
// decides (see absent).
func lookupErr(pid int, op, path string, err error) error {
	perr := &os.PathError{Op: op, Path: path, Err: err}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return absent(pid, fmt.Errorf("%w: %w", ErrHidden, perr))
	}
	return fmt.Errorf("look up process %d: %w", pid, perr)
}

// absent asks kill(pid, 0) about a PID that /proc did not show: ESRCH
// means no process has it in this PID namespace (ErrNotExist); success or
// EPERM mean one does, and why (which wraps ErrHidden or
// ErrProcUntrusted) is returned.
func absent(pid int, why error) error {
	err := unix.Kill(pid, 0)
	switch err {
	case unix.ESRCH:
		return fmt.Errorf("look up process %d: %w", pid, ErrNotExist)
	case nil, unix.EPERM:
		return fmt.Errorf("look up process %d: %w", pid, why)
	}
	return fmt.Errorf("look up process %d: kill 0: %w (and %w)", pid, err, why)
}

// checkProc returns nil when /proc shows this process itself, in this
// process's PID namespace: /proc/self names getpid(), and its NSpid line
// (Linux 4.1 and later) has one entry, which it has only in a /proc
// mounted from this namespace. It returns an error wrapping
// ErrProcUntrusted otherwise.
//
// The NSpid line is read once per proc instance (its device number; each
// mount of proc has its own since Linux 5.8, each PID namespace's before),
// so a lookup pays two system calls for the check, not a file read.
func checkProc() error {
	var st unix.Stat_t
	if err := unix.Stat("/proc", &st); err != nil {
		return fmt.Errorf("%w: %w", ErrProcUntrusted, &os.PathError{Op: "stat", Path: "/proc", Err: err})
	}
	self, err := readlink("/proc/self")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProcUntrusted, err)
	}
	if pid := selfPID(); self != pid {
		return fmt.Errorf("%w: /proc/self names pid %s, this process is %s", ErrProcUntrusted, self, pid)
	}
	trustedProc.Lock()
	defer trustedProc.Unlock()
	if trustedProc.known && trustedProc.dev == uint64(st.Dev) {
		return nil
	}
	dfd, err := sysat.Openat(unix.AT_FDCWD, "/proc/self", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProcUntrusted, &os.PathError{Op: "open", Path: "/proc/self", Err: err})
	}
	defer unix.Close(dfd)
	status, err := readAt(dfd, "status")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProcUntrusted, &os.PathError{Op: "read", Path: "/proc/self/status", Err: err})
	}
	if ids, ok := statusField(status, "NSpid:"); ok && len(bytes.Fields(ids)) != 1 {
		return fmt.Errorf("%w: /proc was mounted from an ancestor PID namespace (NSpid %s)", ErrProcUntrusted, bytes.TrimSpace(ids))
	}
	trustedProc.known, trustedProc.dev = true, uint64(st.Dev)
	return nil
}

// selfPID is this process's PID as /proc/self names it, asked of the
// kernel once: a Go program never forks without an exec, so it cannot
// change, and checkProc runs on every lookup.
var selfPID = sync.OnceValue(func() string { return strconv.Itoa(os.Getpid()) })

// trustedProc is the device of the last proc instance checkProc found to
// be this PID namespace's.
var trustedProc struct {
	sync.Mutex
	known bool
	dev   uint64
}

func currentPIDNamespace() (PIDNamespace, error) {
	if err := checkProc(); err != nil {
		return PIDNamespace{}, fmt.Errorf("read pid namespace: %w", err)
	}
	const path = "/proc/self/ns/pid"
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return PIDNamespace{}, fmt.Errorf("read pid namespace: %w", &os.PathError{Op: "stat", Path: path, Err: err})
	}
	return PIDNamespace{Inode: st.Ino, Initial: st.Ino == InitialPIDNamespace}, nil
}

func nested(pid int) ([]Nested, error) {
	fail := func(err error) ([]Nested, error) {
		return nil, fmt.Errorf("look for process %d in other PID namespaces: %w", pid, err)
	}
	if err := checkProc(); err != nil {
		return fail(err)
	}
	// PID 1 always exists: a /proc that hides it (hidepid=2, as another
	// user) hides others too, and one that lists it without letting its
	// status be read (hidepid=1) is met at every other user's process.
	if _, err := os.ReadFile("/proc/1/status"); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrHidden, err))
	}
	proc, err := os.Open("/proc")
	if err != nil {
		return fail(err)
	}
	defer proc.Close()
	// A process of this namespace has no PID in a nested one: where its
	// namespace can be read (this user's processes, or root), its status
	// is not.
	own, err := readlink("/proc/self/ns/pid")
	if err != nil {
		return fail(err)
	}
	dfd := int(proc.Fd())
	want := []byte(strconv.Itoa(pid))
	var found []Nested
	for {
		names, err := proc.Readdirnames(256)
		for _, name := range names {
			n, perr := strconv.Atoi(name)
			if perr != nil || n <= 0 {
				continue
			}
			if ns, err := readlinkat(dfd, name+"/ns/pid"); err == nil && ns == own {
				continue
			}
			status, err := readAt(dfd, name+"/status")
			switch {
			case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH):
				// Exited since the listing.
				continue
			case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
				return fail(fmt.Errorf("%w: %w", ErrHidden, &os.PathError{Op: "read", Path: "/proc/" + name + "/status", Err: err}))
			case err != nil:
				return fail(&os.PathError{Op: "read", Path: "/proc/" + name + "/status", Err: err})
			}
			if p, ok := nestedAs(status, want); ok {
				p.PID = n
				p.Info, p.Err = lookup(n)
				if !errors.Is(p.Err, ErrNotExist) {
					found = append(found, p)
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return found, nil
		}
		if err != nil {
			return fail(err)
		}
	}
}

// nestedAs parses a /proc/PID/status: whether the process has the PID
// want in a nested PID namespace (an NSpid entry after the first), and
// then its name and whether it is a zombie.
func nestedAs(status, want []byte) (Nested, bool) {
	ids, ok := statusField(status, "NSpid:")
	if !ok {
		return Nested{}, false
	}
	f := bytes.Fields(ids)
	if len(f) < 2 || !slices.ContainsFunc(f[1:], func(id []byte) bool { return bytes.Equal(id, want) }) {
		return Nested{}, false
	}
	var p Nested
	if name, ok := statusField(status, "Name:"); ok {
		p.Comm = string(bytes.TrimSpace(name))
	}
	if st, ok := statusField(status, "State:"); ok {
		if st = bytes.TrimSpace(st); len(st) > 0 && zombieState(st[0]) {
			n, err := statusThreads(status)
			p.Zombie = err == nil && n <= 1
		}
	}
	return p, true
}

// statusField returns the value of the line of a /proc/PID/status that
// starts with name, and whether there is one.
func statusField(status []byte, name string) ([]byte, bool) {
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte(name)); ok {
			return rest, true
		}
	}
	return nil, false
}

// statusThreads parses the Threads: line of a /proc/PID/status.
func statusThreads(status []byte) (int, error) {
	v, ok := statusField(status, "Threads:")
	if !ok {
		return 0, errors.New("no Threads line")
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad Threads %q", bytes.TrimSpace(v))
	}
	return n, nil
}

// readAt reads the small file name of a /proc directory, at most
// maxStatSize bytes (stat and status are both well under it). It reads
// with raw read(2) calls into one buffer: a lookup is on the path of every
// active record a scan judges, and an *os.File would cost an fcntl and a
// read past the end for each. A proc file of one line or a few (stat,
// status) is generated whole by the first read that has room for it, so a
// read that left room and ended a line is the end; anything else reads on
// until read returns 0.
func readAt(dfd int, name string) ([]byte, error) {
	fd, err := sysat.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 1024)
	n := 0
	for {
		if n == len(buf) {
			if n > maxStatSize {
				return nil, fmt.Errorf("more than %d bytes", maxStatSize)
			}
			buf = append(buf, make([]byte, min(len(buf), maxStatSize+1-n))...)
		}
		m, err := sysat.Read(fd, buf[n:])
		if err != nil {
			return nil, err
		}
		n += m
		if m == 0 || (n < len(buf) && buf[n-1] == '\n') {
			break
		}
	}
	if n > maxStatSize {
		return nil, fmt.Errorf("more than %d bytes", maxStatSize)
	}
	return buf[:n], nil
}

func readlink(path string) (string, error) {
	s, err := readlinkat(unix.AT_FDCWD, path)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: path, Err: err}
	}
	return s, nil
}

func readlinkat(dfd int, name string) (string, error) {
	// A result that fills the buffer may be truncated: retry larger.
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

var bootTime = sync.OnceValues(func() (time.Time, error) {
	const path = "/proc/stat"
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	t, err := parseBootTime(data)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %s: %w", path, err)
	}
	// btime is shifted back by the reader's time namespace offset; the
	// host's boot is the one records and start times are judged against.
	off, err := bootOffset()
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	return t.Add(time.Duration(off) * tick), nil
})

// parseBootTime finds the "btime SECONDS" line of /proc/stat.
func parseBootTime(data []byte) (time.Time, error) {
	for line := range bytes.Lines(data) {
		rest, ok := bytes.CutPrefix(line, []byte("btime "))
		if !ok {
			continue
		}
		s := string(bytes.TrimSpace(rest))
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec <= 0 {
			return time.Time{}, fmt.Errorf("bad btime %q", s)
		}
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, errors.New("no btime line")
}

// bootOffset is the boottime offset of this process's time namespace from
// the host's, in clock ticks: the kernel adds it to the start time that
// /proc/PID/stat shows this process, so a runner recorded from the host
// and judged from a time namespace (or the reverse) would otherwise look
// like another process at its PID. It is 0 on kernels without time
// namespaces. It is read once: a process cannot change its own time
// namespace (setns needs a single thread; unshare moves only children).
var bootOffset = sync.OnceValues(func() (int64, error) {
	own, err := readlink("/proc/self/ns/time")
	if errors.Is(err, unix.ENOENT) {
		// A kernel without time namespaces, if /proc shows this
		// process's namespaces at all.
		if _, serr := os.Stat("/proc/self/ns/pid"); serr != nil {
			return 0, fmt.Errorf("read time namespace: %w", serr)
		}
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read time namespace: %w", err)
	}
	// timens_offsets shows the namespace of the process's future
	// children, which is its own unless it unshared one.
	children, err := readlink("/proc/self/ns/time_for_children")
	if err != nil {
		return 0, fmt.Errorf("read time namespace: %w", err)
	}
	if own != children {
		return 0, fmt.Errorf("read time namespace: this process unshared %s; the offsets of its own %s are not shown", children, own)
	}
	const path = "/proc/self/timens_offsets"
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read time namespace: %w", err)
	}
	off, err := parseBootOffset(data)
	if err != nil {
		return 0, fmt.Errorf("read time namespace: %s: %w", path, err)
	}
	return off, nil
})

// parseBootOffset returns the "boottime SECONDS NANOSECONDS" line of a
// timens_offsets file in clock ticks. An offset that is not a whole
// number of ticks is an error: the kernel rounds the sum down, so such an
// offset cannot be taken out of a start time exactly.
func parseBootOffset(data []byte) (int64, error) {
	v, ok := statusField(data, "boottime ")
	if !ok {
		return 0, errors.New("no boottime line")
	}
	f := bytes.Fields(v)
	if len(f) != 2 {
		return 0, fmt.Errorf("bad boottime %q", bytes.TrimSpace(v))
	}
	sec, err1 := strconv.ParseInt(string(f[0]), 10, 32)
	nsec, err2 := strconv.ParseInt(string(f[1]), 10, 64)
	if err1 != nil || err2 != nil || nsec < 0 || nsec >= int64(time.Second) {
		return 0, fmt.Errorf("bad boottime %q", bytes.TrimSpace(v))
	}
	if nsec%int64(tick) != 0 {
		return 0, fmt.Errorf("boottime offset %d.%09d s is not a whole number of clock ticks", sec, nsec)
	}
	return sec*ClockTicks + nsec/int64(tick), nil
}

var bootID = sync.OnceValues(func() (string, error) {
	const path = "/proc/sys/kernel/random/boot_id"
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	id := strings.TrimSpace(string(data))
	if id == "" {
		return "", fmt.Errorf("read boot id: %s is empty", path)
	}
	return id, nil
})
