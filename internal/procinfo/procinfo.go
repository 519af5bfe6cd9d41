// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package procinfo reads the identity of processes: whether a PID exists,
// whether it is a zombie, its start time, executable, boot and PID
// namespace. (PID, StartTime, BootID) names one process. Outside Linux and
// macOS every call returns an error wrapping errors.ErrUnsupported.
package procinfo

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"time"
)

// Errors of Lookup and FindNested: see Lookup.
var (
	ErrNotExist      = errors.New("no such process")
	ErrHidden        = errors.New("process exists but /proc does not show it")
	ErrProcUntrusted = errors.New("/proc does not show this process")
)

// InitialPIDNamespace is the inode of the host's PID namespace (PROC_PID_INIT_INO).
const InitialPIDNamespace = 0xEFFFFFFC

// PIDNamespace is the PID namespace this process judges PIDs in.
type PIDNamespace struct {
	Inode   uint64 // inode of /proc/self/ns/pid; 0 without PID namespaces
	Initial bool   // the host's, or a platform without PID namespaces
}

// Info is what the kernel says about one process. On Linux every field
// comes from the same process.
type Info struct {
	PID int
	// Zombie: exited, not reaped, no live thread left (a Linux leader
	// that called pthread_exit while other threads run is alive).
	Zombie  bool
	Threads int // read only for a Linux leader in state Z
	// StartTime is, on Linux, clock ticks since boot as the host counts
	// them (the same from every time namespace); on macOS microseconds
	// since the epoch. Equal start times within one boot name one process.
	StartTime uint64
	Started   time.Time // StartTime as wall-clock time, to a second on Linux
	Comm      string    // 15 bytes on Linux, 16 on macOS
	Argv0     string    // "" when unreadable, over 4 KiB, and on macOS
	// Executable is the absolute path the process was started from, even
	// if since deleted or replaced (ExecutableDeleted, Linux only); "" when
	// unreadable, and ExecutableErr says why (fs.ErrPermission: another
	// user's process; fs.ErrNotExist: a zombie or a kernel thread).
	Executable        string
	ExecutableDeleted bool
	ExecutableErr     error
}

// Lookup returns what the kernel says about pid: ErrNotExist only when
// kill(pid, 0) says ESRCH in this PID namespace, or pid is no pid_t;
// ErrHidden when /proc hides a PID kill finds (hidepid=, no /proc);
// ErrProcUntrusted when /proc does not show this process, so nothing it
// says is trusted. Malformed kernel data is an error.
func Lookup(pid int) (Info, error) {
	if pid <= 0 || pid > math.MaxInt32 {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, ErrNotExist)
	}
	return lookup(pid)
}

// Nested is a process FindNested found: its PID here, and Lookup's result.
type Nested struct {
	PID  int
	Info Info
	Err  error
}

// FindNested returns the live processes that have pid in a PID namespace
// nested below the caller's (a container's). It returns an error wrapping
// ErrHidden when it cannot see every process and ErrProcUntrusted when
// /proc does not show the caller. macOS has none.
func FindNested(pid int) ([]Nested, error) {
	if pid <= 0 || pid >= 1<<22 { // PID_MAX_LIMIT: no namespace reaches it
		return nil, nil
	}
	return nested(pid)
}

// CurrentPIDNamespace returns this process's PID namespace; on Linux an
// error wrapping ErrProcUntrusted when /proc does not show this process.
func CurrentPIDNamespace() (PIDNamespace, error) { return currentPIDNamespace() }

// BootID identifies the current boot (boot_id, kern.bootsessionuuid).
func BootID() (string, error) { return bootID() }

// BootTime is when the machine booted, to the second, as the host sees it.
func BootTime() (time.Time, error) { return bootTime() }

// Stat is the part of a Linux /proc/PID/stat line that identifies a process.
type Stat struct {
	PID       int
	Comm      string
	State     byte
	StartTime uint64 // field 22: clock ticks since boot
}

const statFieldsAfterComm = 22 - 2 // fields 3 to 22 (starttime)

// ParseStat parses one Linux /proc/PID/stat line; anything malformed is
// an error, never a panic.
func ParseStat(data []byte) (Stat, error) {
	// comm may hold any byte: it runs from the first '(' to the last ')'.
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return Stat{}, errors.New("parse stat: no command name in parentheses")
	}
	pidField, ok := bytes.CutSuffix(data[:open], []byte(" "))
	pid, err := strconv.Atoi(string(pidField))
	if !ok || err != nil || pid <= 0 {
		return Stat{}, fmt.Errorf("parse stat: bad pid %q before the command name", data[:open])
	}
	rest, ok := bytes.CutPrefix(data[end+1:], []byte(" "))
	fields := bytes.Fields(rest)
	if !ok || len(fields) < statFieldsAfterComm {
		return Stat{}, fmt.Errorf("parse stat: want a space and at least %d fields after the command name", statFieldsAfterComm)
	}
	state := fields[0]
	if len(state) != 1 {
		return Stat{}, fmt.Errorf("parse stat: bad state %q", state)
	}
	startField := fields[statFieldsAfterComm-1]
	start, err := strconv.ParseUint(string(startField), 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat: bad start time %q", startField)
	}
	return Stat{PID: pid, Comm: string(data[open+1 : end]), State: state[0], StartTime: start}, nil
}

// zombieState: Z (not yet reaped), X and, before Linux 3.x, x (dead).
func zombieState(state byte) bool {
	return state == 'Z' || state == 'X' || state == 'x'
}

// parseProcArgs2 returns the executable path from a macOS kern.procargs2
// buffer: a 4-byte argc, then the path given to execve, NUL-terminated
// (then argv and the environment).
func parseProcArgs2(buf []byte) (string, error) {
	if len(buf) < 4 {
		return "", fmt.Errorf("parse procargs2: %d bytes, too short for argc", len(buf))
	}
	path, _, ok := bytes.Cut(buf[4:], []byte{0})
	if !ok {
		return "", errors.New("parse procargs2: executable path not NUL-terminated")
	}
	if !filepath.IsAbs(string(path)) {
		return "", fmt.Errorf("parse procargs2: executable path %q is not absolute", path)
	}
	return string(path), nil
}
