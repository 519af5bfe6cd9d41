// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

const (
	// ClockTicks is USER_HZ, the unit of /proc/PID/stat field 22: 100 on
	// every architecture Go supports.
	ClockTicks = 100
	tick       = time.Second / ClockTicks

	maxStatSize = 8192 // bound of the reads of /proc/PID/stat and status
	maxArgv0    = 4096 // bound of the read of cmdline
)

func lookup(pid int) (Info, error) {
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, ErrNotExist)
	}
	if err := checkProc(); err != nil {
		return Info{}, absent(pid, err)
	}
	// Reads relative to /proc/PID's descriptor fail once the PID is reused.
	dir := "/proc/" + strconv.Itoa(pid)
	dfd, err := sysat.Openat(unix.AT_FDCWD, dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Info{}, lookupErr(pid, "open", dir, err)
	}
	defer unix.Close(dfd)

	st, err := readParsed(dfd, pid, dir, "stat", ParseStat)
	if err != nil {
		return Info{}, err
	}
	boot, err := bootTime()
	if err != nil {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, err)
	}
	off, _ := bootOffset() // bootTime read it without error
	hostStart := int64(st.StartTime) - off
	if hostStart < 0 {
		return Info{}, fmt.Errorf("look up process %d: %s/stat: start time %d before the boottime offset %d", pid, dir, st.StartTime, off)
	}
	info := Info{
		PID:       pid,
		Zombie:    zombieState(st.State),
		StartTime: uint64(hostStart),
		Started:   boot.Add(time.Duration(hostStart) * tick),
		Comm:      st.Comm,
	}
	if st.State == 'Z' {
		// A leader that called pthread_exit is Z while other threads run.
		n, err := readParsed(dfd, pid, dir, "status", func(b []byte) (int64, error) { return statusNumber(b, "Threads:") })
		if err != nil {
			return Info{}, err
		}
		info.Threads = int(n)
		info.Zombie = n <= 1
	}
	exe := make([]byte, unix.PathMax) // the kernel keeps /proc links under PATH_MAX
	n, err := unix.Readlinkat(dfd, "exe", exe)
	switch {
	case err != nil:
		info.ExecutableErr = &os.PathError{Op: "readlink", Path: dir + "/exe", Err: err}
	case !bytes.HasPrefix(exe[:n], []byte("/")):
		info.ExecutableErr = fmt.Errorf("readlink %s/exe: %q is not an absolute path", dir, exe[:n])
	default:
		info.Executable, info.ExecutableDeleted = strings.CutSuffix(string(exe[:n]), " (deleted)")
	}
	cmdline, err := readUpTo(dfd, "cmdline", maxArgv0)
	if arg, _, ok := bytes.Cut(cmdline, []byte{0}); err == nil && ok {
		info.Argv0 = string(arg)
	}
	return info, nil
}

// readParsed reads and parses name in dfd, the /proc/PID directory dir.
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

// lookupErr wraps err; ENOENT or ESRCH from /proc is left to kill.
func lookupErr(pid int, op, path string, err error) error {
	perr := &os.PathError{Op: op, Path: path, Err: err}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return absent(pid, fmt.Errorf("%w: %w", ErrHidden, perr))
	}
	return fmt.Errorf("look up process %d: %w", pid, perr)
}

// absent is ErrNotExist if kill(pid, 0) says ESRCH, else why.
func absent(pid int, why error) error {
	if unix.Kill(pid, 0) == unix.ESRCH {
		why = ErrNotExist
	}
	return fmt.Errorf("look up process %d: %w", pid, why)
}

// checkProc returns an error wrapping ErrProcUntrusted unless /proc/self
// names getpid() and NSpid has one entry.
func checkProc() error {
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProcUntrusted, err)
	}
	if pid := strconv.Itoa(os.Getpid()); self != pid {
		return fmt.Errorf("%w: /proc/self names pid %s, this process is %s", ErrProcUntrusted, self, pid)
	}
	status, err := readAt(unix.AT_FDCWD, "/proc/self/status")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProcUntrusted, &os.PathError{Op: "read", Path: "/proc/self/status", Err: err})
	}
	if ids, ok := statusField(status, "NSpid:"); ok && len(bytes.Fields(ids)) != 1 {
		return fmt.Errorf("%w: /proc was mounted from an ancestor PID namespace (NSpid %s)", ErrProcUntrusted, bytes.TrimSpace(ids))
	}
	return nil
}

func currentPIDNamespace() (PIDNamespace, error) {
	if err := checkProc(); err != nil {
		return PIDNamespace{}, fmt.Errorf("read pid namespace: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return PIDNamespace{}, fmt.Errorf("read pid namespace: %w", &os.PathError{Op: "stat", Path: "/proc/self/ns/pid", Err: err})
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
	// A /proc that hides PID 1's status (hidepid=) hides other processes.
	if _, err := os.ReadFile("/proc/1/status"); err != nil {
		return fail(fmt.Errorf("%w: %w", ErrHidden, err))
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return fail(err)
	}
	// Processes of this namespace have no PID in a nested one.
	own, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return fail(err)
	}
	want := []byte(strconv.Itoa(pid))
	var found []Nested
	for _, e := range entries {
		p, ok, err := nestedAt(e.Name(), own, want)
		if err != nil {
			return fail(err)
		}
		if ok {
			found = append(found, p)
		}
	}
	return found, nil
}

// nestedAt reports whether the /proc entry name is a live process outside
// the namespace own that has the PID want in a nested one.
func nestedAt(name, own string, want []byte) (Nested, bool, error) {
	n, err := strconv.Atoi(name)
	if err != nil || n <= 0 {
		return Nested{}, false, nil
	}
	if ns, err := os.Readlink("/proc/" + name + "/ns/pid"); err == nil && ns == own {
		return Nested{}, false, nil
	}
	status, err := readAt(unix.AT_FDCWD, "/proc/"+name+"/status")
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH):
		return Nested{}, false, nil // exited since the listing
	case err != nil: // EACCES, EPERM: hidepid= or another user's
		return Nested{}, false, fmt.Errorf("%w: %w", ErrHidden, &os.PathError{Op: "read", Path: "/proc/" + name + "/status", Err: err})
	}
	ids, _ := statusField(status, "NSpid:")
	if f := bytes.Fields(ids); len(f) < 2 || !slices.ContainsFunc(f[1:], func(id []byte) bool { return bytes.Equal(id, want) }) {
		return Nested{}, false, nil
	}
	p := Nested{PID: n}
	p.Info, p.Err = lookup(n)
	return p, !errors.Is(p.Err, ErrNotExist), nil
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

// statusNumber parses the number, at least 0, on the line that starts with name.
func statusNumber(status []byte, name string) (int64, error) {
	v, ok := statusField(status, name)
	n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
	if !ok || err != nil || n < 0 {
		return 0, fmt.Errorf("no number on a %q line", name)
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
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, int64(limit)))
}

var bootTime = sync.OnceValues(func() (time.Time, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	t, err := parseBootTime(data)
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: /proc/stat: %w", err)
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
	sec, err := statusNumber(data, "btime ")
	if err == nil && sec == 0 {
		err = errors.New("btime is 0")
	}
	return time.Unix(sec, 0), err
}

// bootOffset is the boottime offset, in clock ticks, of this process's
// time namespace (which a Go process cannot change) from the host's.
var bootOffset = sync.OnceValues(func() (int64, error) {
	own, err := os.Readlink("/proc/self/ns/time")
	if errors.Is(err, unix.ENOENT) { // a kernel without time namespaces
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read time namespace: %w", err)
	}
	// timens_offsets shows the namespace of future children.
	children, err := os.Readlink("/proc/self/ns/time_for_children")
	if err != nil {
		return 0, fmt.Errorf("read time namespace: %w", err)
	}
	if own != children {
		return 0, fmt.Errorf("read time namespace: this process unshared %s; the offsets of its own %s are not shown", children, own)
	}
	data, err := os.ReadFile("/proc/self/timens_offsets")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read time namespace: %w", err)
	}
	off, err := parseBootOffset(data)
	if err != nil {
		return 0, fmt.Errorf("read time namespace: /proc/self/timens_offsets: %w", err)
	}
	return off, nil
})

// parseBootOffset returns the "boottime SECONDS NANOSECONDS" line of
// timens_offsets in clock ticks; an offset of no whole number of ticks is
// an error (the kernel rounds the sum, so it cannot be taken out).
func parseBootOffset(data []byte) (int64, error) {
	v, ok := statusField(data, "boottime ")
	f := bytes.Fields(v)
	if !ok || len(f) != 2 {
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
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
})
