// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"errors"
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
)

// Info is what the kernel says about one process.
type Info struct {
	PID int
	// Zombie is true for a process that has exited but not been reaped
	// (Linux state Z or X; macOS SZOMB).
	Zombie bool
	// StartTime is the kernel start time token: Linux field 22 of
	// /proc/PID/stat (clock ticks since boot); macOS start time in
	// microseconds since the Unix epoch. Comparable only for equality
	// within one boot.
	StartTime uint64
	// Started is StartTime as wall-clock time (boot time + ticks), accurate
	// to about a second on Linux.
	Started time.Time
	// Comm is the kernel's short command name (Linux: truncated to 15 bytes).
	Comm string
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

// Lookup returns what the kernel says about pid. It returns an error
// wrapping ErrNotExist when no process has that PID (including pid <= 0),
// and never panics on malformed /proc content (a descriptive error instead).
// An unreadable executable is not an error: see Info.ExecutableErr.
func Lookup(pid int) (Info, error) { return lookup(pid) }

// Self returns Lookup(os.Getpid()).
func Self() (Info, error) { return lookup(os.Getpid()) }

// BootID identifies the current boot: Linux /proc/sys/kernel/random/boot_id;
// macOS kern.bootsessionuuid (or kern.boottime formatted, when absent). It
// returns an error when the kernel does not provide it; the value is read
// once and cached, since it cannot change while this process runs.
func BootID() (string, error) { return bootID() }

// BootTime is the wall-clock time the machine booted, to the second. It
// returns an error when the kernel does not provide it; the value is read
// once and cached.
func BootTime() (time.Time, error) { return bootTime() }
