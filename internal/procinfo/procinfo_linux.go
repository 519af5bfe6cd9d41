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

// ClockTicks is USER_HZ, the unit of /proc/PID/stat field 22: the ABI
// fixes it at 100 on every architecture Go supports (sysconf needs cgo).
const ClockTicks = 100

const tick = time.Second / ClockTicks

// deletedSuffix ends /proc/PID/exe once the file was unlinked or replaced.
const deletedSuffix = " (deleted)"

// maxStatSize bounds the read of /proc/PID/stat (under 1 KiB) and status
// (under 2 KiB).
const maxStatSize = 8192

func lookup(pid int) (Info, error) {
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
	// Every read is relative to one descriptor of /proc/PID, which refers
	// to the process, not the number: reads after the PID's reuse fail
	// instead of mixing two processes.
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
		// The leader's state: after pthread_exit it is Z while other
		// threads run on.
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

// readArgv0 returns the first NUL-terminated string of cmdline in dfd, or
// "" when not there whole within maxArgv0 bytes (kernel threads, zombies).
func readArgv0(dfd int) string {
	data, err := readUpTo(dfd, "cmdline", maxArgv0)
	arg, _, ok := bytes.Cut(data, []byte{0})
	if err != nil || !ok {
		return ""
	}
	return string(arg)
}

// readParsed reads name in dfd, the /proc/PID directory dir, and parses it.
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

// startOf returns the Info of pid with its start time from st as the
// host's kernel counts it, and as wall-clock time.
func startOf(pid int, dir string, st Stat) (Info, error) {
	boot, err := bootTime()
	if err != nil {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, err)
	}
	if st.StartTime > math.MaxInt64/uint64(tick) {
		return Info{}, fmt.Errorf("look up process %d: %s/stat: start time %d out of range", pid, dir, st.StartTime)
	}
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

// readExecutable fills info's Executable from exe in dfd, else
// ExecutableErr.
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

// lookupErr wraps err; ENOENT or ESRCH from /proc is not taken for death
// on its own: kill(2) decides (see absent).
func lookupErr(pid int, op, path string, err error) error {
	perr := &os.PathError{Op: op, Path: path, Err: err}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return absent(pid, fmt.Errorf("%w: %w", ErrHidden, perr))
	}
	return fmt.Errorf("look up process %d: %w", pid, perr)
}

// absent asks kill(pid, 0) about a PID that /proc did not show: ESRCH is
// ErrNotExist; success or EPERM return why /proc did not show it.
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

// checkProc returns nil when /proc shows this process in its own PID
// namespace: /proc/self names getpid() and its NSpid line (Linux 4.1) has
// one entry, as only in a /proc mounted from this namespace; else an error
// wrapping ErrProcUntrusted. NSpid is read once per proc instance (device
// number), so a lookup pays two system calls for the check.
func checkProc() error {
	var st unix.Stat_t
	if err := unix.Stat("/proc", &st); err != nil {
		return fmt.Errorf("%w: %w", ErrProcUntrusted, &os.PathError{Op: "stat", Path: "/proc", Err: err})
	}
	self, err := readlink("/proc/self")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProcUntrusted, err)
	}
	if pid := strconv.Itoa(os.Getpid()); self != pid {
		return fmt.Errorf("%w: /proc/self names pid %s, this process is %s", ErrProcUntrusted, self, pid)
	}
	trustedProc.Lock()
	defer trustedProc.Unlock()
	if trustedProc.known && trustedProc.dev == uint64(st.Dev) {
		return nil
	}
	status, err := readAt(unix.AT_FDCWD, "/proc/self/status")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProcUntrusted, &os.PathError{Op: "read", Path: "/proc/self/status", Err: err})
	}
	if ids, ok := statusField(status, "NSpid:"); ok && len(bytes.Fields(ids)) != 1 {
		return fmt.Errorf("%w: /proc was mounted from an ancestor PID namespace (NSpid %s)", ErrProcUntrusted, bytes.TrimSpace(ids))
	}
	trustedProc.known, trustedProc.dev = true, uint64(st.Dev)
	return nil
}

// trustedProc is the last proc instance checkProc trusted.
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
	// PID 1 always exists: a /proc that hides its status (hidepid=)
	// hides other users' processes too.
	if _, err := os.ReadFile("/proc/1/status"); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrHidden, err))
	}
	proc, err := os.Open("/proc")
	if err != nil {
		return fail(err)
	}
	defer proc.Close()
	// A process of this namespace has no PID in a nested one: skip its
	// status where its namespace can be read.
	own, err := readlink("/proc/self/ns/pid")
	if err != nil {
		return fail(err)
	}
	want := []byte(strconv.Itoa(pid))
	var found []Nested
	for {
		names, err := proc.Readdirnames(256)
		for _, name := range names {
			p, ok, serr := nestedAt(int(proc.Fd()), name, own, want)
			if serr != nil {
				return fail(serr)
			}
			if ok {
				found = append(found, p)
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

// nestedAt looks at the /proc entry name: whether it is a live process
// outside the namespace own that has the PID want in a nested one.
func nestedAt(dfd int, name, own string, want []byte) (Nested, bool, error) {
	n, err := strconv.Atoi(name)
	if err != nil || n <= 0 {
		return Nested{}, false, nil
	}
	if ns, err := readlinkat(dfd, name+"/ns/pid"); err == nil && ns == own {
		return Nested{}, false, nil
	}
	status, err := readAt(dfd, name+"/status")
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH):
		return Nested{}, false, nil // exited since the listing
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return Nested{}, false, fmt.Errorf("%w: %w", ErrHidden, &os.PathError{Op: "read", Path: "/proc/" + name + "/status", Err: err})
	case err != nil:
		return Nested{}, false, &os.PathError{Op: "read", Path: "/proc/" + name + "/status", Err: err}
	}
	p, ok := nestedAs(status, want)
	if !ok {
		return Nested{}, false, nil
	}
	p.PID = n
	p.Info, p.Err = lookup(n)
	return p, !errors.Is(p.Err, ErrNotExist), nil
}

// nestedAs parses a /proc/PID/status: whether the process has the PID
// want in a nested PID namespace (NSpid after the first), its name and
// whether it is a zombie.
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

// statusField returns the rest of the line that starts with name.
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

// readAt reads name in the /proc directory dfd, at most maxStatSize bytes.
func readAt(dfd int, name string) ([]byte, error) {
	data, err := readUpTo(dfd, name, maxStatSize+1)
	if err == nil && len(data) > maxStatSize {
		return nil, fmt.Errorf("more than %d bytes", maxStatSize)
	}
	return data, err
}

// readUpTo reads name in dfd to its end or its first limit bytes.
func readUpTo(dfd int, name string, limit int) ([]byte, error) {
	fd, err := sysat.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf, n := make([]byte, limit), 0
	for n < limit {
		m, err := sysat.Read(fd, buf[n:])
		if err != nil {
			return nil, err
		}
		if m == 0 {
			break
		}
		n += m
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
	// A result that fills the buffer may be truncated.
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
	// btime is shifted by the reader's time namespace; records are the host's.
	off, err := bootOffset()
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	return t.Add(time.Duration(off) * tick), nil
})

// parseBootTime finds the "btime SECONDS" line of /proc/stat.
func parseBootTime(data []byte) (time.Time, error) {
	v, ok := statusField(data, "btime ")
	if !ok {
		return time.Time{}, errors.New("no btime line")
	}
	sec, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}, fmt.Errorf("bad btime %q", bytes.TrimSpace(v))
	}
	return time.Unix(sec, 0), nil
}

// bootOffset is the boottime offset in clock ticks of this process's time
// namespace from the host's, which the kernel adds to the start times it
// shows this process; 0 on kernels without time namespaces. Read once: a
// Go process cannot change its own (setns needs one thread; unshare moves
// only children).
var bootOffset = sync.OnceValues(func() (int64, error) {
	own, err := readlink("/proc/self/ns/time")
	if errors.Is(err, unix.ENOENT) {
		// No time namespaces, if /proc shows namespaces at all.
		if _, serr := os.Stat("/proc/self/ns/pid"); serr != nil {
			return 0, fmt.Errorf("read time namespace: %w", serr)
		}
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read time namespace: %w", err)
	}
	// timens_offsets shows the namespace of future children.
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

// parseBootOffset returns the "boottime SECONDS NANOSECONDS" line of
// timens_offsets in clock ticks; not a whole number of ticks is an error
// (the kernel rounds the sum, so it cannot be taken out exactly).
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
