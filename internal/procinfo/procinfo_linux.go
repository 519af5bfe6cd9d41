// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
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

// maxStatSize bounds the read of /proc/PID/stat: the real line is well under
// 1 KiB (52 numbers and a comm of at most 64 bytes).
const maxStatSize = 4096

func lookup(pid int) (Info, error) {
	if pid <= 0 {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, ErrNotExist)
	}
	dir := "/proc/" + strconv.Itoa(pid)
	// Everything is read relative to one descriptor of /proc/PID: it
	// refers to that process, not to the number, so if the process exits
	// and the PID is reused between the reads below, they fail instead of
	// mixing the start time of one process with the executable of another.
	dfd, err := openNoEINTR(dir)
	if err != nil {
		return Info{}, lookupErr(pid, "open", dir, err)
	}
	defer unix.Close(dfd)

	data, err := readStat(dfd)
	if err != nil {
		return Info{}, lookupErr(pid, "read", dir+"/stat", err)
	}
	st, err := ParseStat(data)
	if err != nil {
		return Info{}, fmt.Errorf("look up process %d: %s/stat: %w", pid, dir, err)
	}
	if st.PID != pid {
		return Info{}, fmt.Errorf("look up process %d: %s/stat names pid %d", pid, dir, st.PID)
	}
	boot, err := bootTime()
	if err != nil {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, err)
	}
	if st.StartTime > math.MaxInt64/uint64(tick) {
		return Info{}, fmt.Errorf("look up process %d: %s/stat: start time %d out of range", pid, dir, st.StartTime)
	}
	info := Info{
		PID:       pid,
		Zombie:    zombieState(st.State),
		StartTime: st.StartTime,
		Started:   boot.Add(time.Duration(st.StartTime) * tick),
		Comm:      st.Comm,
	}
	exe, err := readlinkat(dfd, "exe")
	switch {
	case err != nil:
		info.ExecutableErr = &os.PathError{Op: "readlink", Path: dir + "/exe", Err: err}
	case !strings.HasPrefix(exe, "/"):
		info.ExecutableErr = fmt.Errorf("readlink %s/exe: %q is not an absolute path", dir, exe)
	default:
		info.Executable, info.ExecutableDeleted = strings.CutSuffix(exe, deletedSuffix)
	}
	return info, nil
}

// lookupErr wraps err, adding ErrNotExist when it says the process is gone:
// ENOENT for /proc/PID itself, ESRCH for a read after the process was reaped.
func lookupErr(pid int, op, path string, err error) error {
	perr := &os.PathError{Op: op, Path: path, Err: err}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("look up process %d: %w: %w", pid, ErrNotExist, perr)
	}
	return fmt.Errorf("look up process %d: %w", pid, perr)
}

func openNoEINTR(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func readStat(dfd int) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Openat(dfd, "stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "stat")
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStatSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxStatSize {
		return nil, fmt.Errorf("more than %d bytes", maxStatSize)
	}
	return data, nil
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
	return t, nil
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
