// SPDX-License-Identifier: Apache-2.0

// THIS FILE IS THE AGREED API SKELETON. The procinfo helper replaces the
// panics with real code in procinfo_linux.go / procinfo_darwin.go (and a
// procinfo_other.go stub returning ErrUnsupported elsewhere); names and
// signatures below are relied on by packages gc and runner.

// Package procinfo reads the identity of processes: whether a PID exists,
// whether it is a zombie, its kernel start time, its executable, and the
// boot it belongs to.
package procinfo

import (
	"errors"
	"time"
)

var (
	// ErrNotExist: no process has that PID.
	ErrNotExist = errors.New("no such process")
	// ErrUnsupported: this platform cannot answer.
	ErrUnsupported = errors.New("process identity not supported on this platform")
)

// Info is what the kernel says about one process.
type Info struct {
	PID int
	// Zombie is true for a process that has exited but not been reaped
	// (Linux state Z or X).
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
	Executable string
	// ExecutableErr says why Executable is empty, nil otherwise.
	ExecutableErr error
}

// Lookup returns what the kernel says about pid. It returns an error
// wrapping ErrNotExist when no process has that PID (including pid <= 0),
// and never panics on malformed /proc content (a descriptive error instead).
func Lookup(pid int) (Info, error) { panic("not implemented") }

// Self returns Lookup(os.Getpid()).
func Self() (Info, error) { panic("not implemented") }

// BootID identifies the current boot: Linux /proc/sys/kernel/random/boot_id;
// macOS kern.bootsessionuuid (or kern.boottime formatted, when absent).
func BootID() (string, error) { panic("not implemented") }

// BootTime is the wall-clock time the machine booted.
func BootTime() (time.Time, error) { panic("not implemented") }
