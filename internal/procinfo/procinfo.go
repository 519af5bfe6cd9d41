// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"
)

var (
	// ErrNotExist means no process has that PID. Errors wrapping it are
	// returned by Lookup for pid <= 0 and for a PID with no process.
	ErrNotExist = errors.New("no such process")
	// ErrUnsupported means this platform cannot answer; every function
	// returns an error wrapping it on platforms other than Linux and macOS.
	ErrUnsupported = errors.New("process identity not supported on this platform")
	// ErrHidden means a process has the PID (kill(pid, 0) finds it) but
	// /proc does not show it: /proc mounted hidepid=, a /proc of another
	// PID namespace, or no /proc at all. Nothing about the process is
	// known, but it exists.
	ErrHidden = errors.New("process exists but /proc does not show it")
	// ErrProcUntrusted means /proc does not show this process itself
	// (/proc/self missing, naming another PID, or a /proc mounted from
	// another PID namespace), so nothing it says about a PID is trusted.
	ErrProcUntrusted = errors.New("/proc does not show this process")
)

// InitialPIDNamespace is the inode of Linux's initial PID namespace
// (PROC_PID_INIT_INO), fixed by the kernel: the namespace of the host,
// where every process of the machine has a PID.
const InitialPIDNamespace = 0xEFFFFFFC

// PIDNamespace is the PID namespace this process judges PIDs in.
type PIDNamespace struct {
	// Inode identifies it (Linux: the inode of /proc/self/ns/pid); 0 on
	// platforms without PID namespaces.
	Inode uint64
	// Initial is true for the host's PID namespace, and on platforms
	// without PID namespaces.
	Initial bool
}

// Info is what the kernel says about one process.
type Info struct {
	PID int
	// Zombie is true for a process that has exited but not been reaped
	// (Linux state Z or X with no live thread left; macOS SZOMB). A Linux
	// thread-group leader that exited with pthread_exit shows state Z
	// while its other threads still run: that process is alive, and
	// Zombie is false.
	Zombie bool
	// Threads is the number of threads the kernel counts for the process
	// (Linux /proc/PID/status Threads:, the exited leader included); 0
	// when unknown (macOS, or not read because the process is running).
	Threads int
	// StartTime is the kernel start time token: Linux field 22 of
	// /proc/PID/stat (clock ticks since boot), less the boottime offset
	// of the caller's time namespace, so that it is the same from every
	// time namespace; macOS start time in
	// microseconds since the Unix epoch. Comparable only for equality
	// within one boot.
	StartTime uint64
	// Started is StartTime as wall-clock time (boot time + ticks), accurate
	// to about a second on Linux.
	Started time.Time
	// Comm is the kernel's short command name (Linux: truncated to 15
	// bytes; macOS: 16): the base name of the path the process was
	// started from, symlinks not resolved, unless it renamed itself.
	Comm string
	// Argv0 is the process's argv[0] as it reads now (Linux
	// /proc/PID/cmdline; "" when unreadable, empty or longer than 4 KiB,
	// and on macOS). The process may have rewritten it.
	Argv0 string
	// Executable is the absolute path of the executable, "" when it cannot
	// be read (EPERM for other users' processes, kernel threads, zombies).
	// When the file was deleted or replaced after the process started it
	// (an upgrade, say), Executable is still the path it was started from
	// and ExecutableDeleted is true: it is the same process either way.
	Executable string
	// ExecutableDeleted is true when the kernel reports that Executable no
	// longer names the file the process runs (Linux only; always false on
	// macOS, which does not say).
	ExecutableDeleted bool
	// ExecutableErr says why Executable is empty, nil otherwise. It wraps
	// the system error (fs.ErrPermission for another user's process;
	// fs.ErrNotExist for a zombie or a kernel thread, which still exist as
	// processes).
	ExecutableErr error
}

// Lookup returns what the kernel says about pid. It returns ErrNotExist only
// when kill(pid, 0) says ESRCH in this PID namespace, or pid is no pid_t
// (kill would truncate it into a process group); ErrHidden when /proc hides
// a PID kill finds; ErrProcUntrusted when /proc does not show this process.
func Lookup(pid int) (Info, error) {
	if pid <= 0 || pid > math.MaxInt32 {
		return Info{}, fmt.Errorf("look up process %d: %w", pid, ErrNotExist)
	}
	return lookup(pid)
}

// pidLimit is the kernel's PID_MAX_LIMIT on 64-bit Linux: no process in
// any PID namespace has a PID of it or above.
const pidLimit = 1 << 22

// Nested is a process that has a given PID in a PID namespace nested
// below the caller's (a container's), as FindNested found it.
type Nested struct {
	// PID is its PID in the caller's namespace.
	PID int
	// Comm is its kernel short name, as /proc/PID/status shows it.
	Comm string
	// Zombie: exited, with no live thread left.
	Zombie bool
	// Info is what Lookup says of it (by its PID here), once found; Err,
	// when not nil, says why it could not be read (it did not exit).
	Info Info
	Err  error
}

// FindNested returns the processes that have pid in a PID namespace nested
// below the caller's (a container's), reading every process's status. It
// returns ErrHidden when it cannot see every process and ErrProcUntrusted
// when /proc does not show the caller. macOS has none.
func FindNested(pid int) ([]Nested, error) {
	if pid <= 0 || pid >= pidLimit {
		return nil, nil
	}
	return nested(pid)
}

// CurrentPIDNamespace returns the PID namespace of this process. On Linux
// it returns an error wrapping ErrProcUntrusted when /proc does not show
// this process itself, since then neither the namespace nor any PID can
// be judged through it.
func CurrentPIDNamespace() (PIDNamespace, error) { return currentPIDNamespace() }

// Self returns Lookup(os.Getpid()).
func Self() (Info, error) { return Lookup(os.Getpid()) }

// BootID identifies the current boot: Linux /proc/sys/kernel/random/boot_id;
// macOS kern.bootsessionuuid (or kern.boottime formatted, when absent). It
// returns an error when the kernel does not provide it; the value is read
// once and cached, since it cannot change while this process runs.
func BootID() (string, error) { return bootID() }

// BootTime is the wall-clock time the machine booted, to the second, as
// the host sees it (Linux: a time namespace's boottime offset taken out). It
// returns an error when the kernel does not provide it; the value is read
// once and cached.
func BootTime() (time.Time, error) { return bootTime() }
