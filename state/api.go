// SPDX-License-Identifier: Apache-2.0

// THIS FILE IS THE AGREED API SKELETON. The state helper replaces the
// panics with real code and may split it into files (state.go, read.go,
// save.go, lock.go, lease.go, probe.go); names and signatures below are
// relied on by packages gc and runner and must not change without telling
// the coordinator.

package state

import (
	"context"
	"errors"
	"os"
	"time"
)

// File names inside a data directory, as released go-microvm uses them.
const (
	// FileName is the state file.
	FileName = "go-microvm-state.json"
	// LockFileName is the state lock: an empty file flocked by writers.
	LockFileName = "go-microvm-state.lock"
	// TempPattern is the os.CreateTemp pattern of in-flight saves.
	TempPattern = "state-*.json.tmp"
	// CurrentVersion is the schema version written and the newest understood.
	CurrentVersion = 1
	// MaxFileSize caps how much of a state file is ever read.
	MaxFileSize = 64 << 10
)

// Errors returned by Load and friends; each is wrapped in an *os.PathError
// (or an error that names the path) and is testable with errors.Is.
var (
	ErrNotRegular   = errors.New("state file is not a regular file")
	ErrTooLarge     = errors.New("state file exceeds size cap")
	ErrCorrupt      = errors.New("state file is not valid JSON")
	ErrNewerVersion = errors.New("state file version is newer than understood")
	// ErrLocked: a non-blocking lock attempt found the lock held.
	ErrLocked = errors.New("lock is held by another holder")
)

// State is the persisted record of one VM, compatible with released
// go-microvm. Fields after CreatedAt are additive (released readers ignore
// them; released writers drop them, which sends the collector back to the
// PID rules).
type State struct {
	Version      int       `json:"version"`
	Active       bool      `json:"active"`
	Name         string    `json:"name"`
	Image        string    `json:"image"`
	CPUs         uint32    `json:"cpus"`
	MemoryMB     uint32    `json:"memory_mb"`
	PID          int       `json:"pid,omitempty"`
	PIDStartTime time.Time `json:"pid_start_time"`
	CreatedAt    time.Time `json:"created_at"`

	// Leased is the run marker: this run is covered by a run lease on the
	// data directory. Marker set + lease free = the run ended uncleanly.
	Leased bool `json:"leased,omitempty"`
	// Runner is the exact identity of the runner process, when known.
	Runner *Identity `json:"runner,omitempty"`
}

// Identity pins a process beyond its PID.
type Identity struct {
	// StartTime is the kernel's start time token of the process: on Linux
	// field 22 of /proc/PID/stat (clock ticks since boot); on macOS the
	// process start time in microseconds since the Unix epoch.
	StartTime uint64 `json:"start_time"`
	// BootID identifies the boot the process ran in.
	BootID string `json:"boot_id"`
	// Executable is the absolute path of the runner executable.
	Executable string `json:"executable,omitempty"`
}

// Manager reads and writes the state of one data directory.
type Manager struct {
	dataDir string
}

// NewManager returns a Manager for dataDir.
func NewManager(dataDir string) *Manager { return &Manager{dataDir: dataDir} }

// Dir returns the data directory.
func (m *Manager) Dir() string { return m.dataDir }

// Load reads the state without locking. A missing file is a fresh default
// state (Version 1, inactive), as in released go-microvm.
func (m *Manager) Load() (*State, error) { panic("not implemented") }

// LoadAndLock takes the state lock (blocking until ctx is done) and loads.
func (m *Manager) LoadAndLock(ctx context.Context) (*LockedState, error) {
	panic("not implemented")
}

// LoadAndLockWithRetry is LoadAndLock bounded by timeout.
func (m *Manager) LoadAndLockWithRetry(ctx context.Context, timeout time.Duration) (*LockedState, error) {
	panic("not implemented")
}

// TryLoadAndLock takes the state lock without blocking; ErrLocked if held.
func (m *Manager) TryLoadAndLock() (*LockedState, error) { panic("not implemented") }

// LockedState is a loaded state whose state lock is held.
type LockedState struct {
	*State
	// unexported: manager, lock
}

// Save writes the state durably and atomically; the lock stays held.
func (ls *LockedState) Save() error { panic("not implemented") }

// Release drops the state lock. Safe to call twice.
func (ls *LockedState) Release() error { panic("not implemented") }

// Remove deletes the state file (the lock stays held until Release).
func (ls *LockedState) Remove() error { panic("not implemented") }

// Parse decodes a state file's bytes with the same checks as Load
// (size cap, JSON, version). Used by the fuzzer and by gc.
func Parse(data []byte) (*State, error) { panic("not implemented") }

// ReadFile reads and parses the state file at path without following
// symlinks or blocking on FIFOs. (gc uses it; Load uses it too.)
func ReadFile(path string) (*State, error) { panic("not implemented") }

// ProbeLock reports whether dataDir's state lock is held by someone right
// now. It creates nothing and works on a read-only filesystem; a missing
// lock file is "not held".
func ProbeLock(dataDir string) (held bool, err error) { panic("not implemented") }

// Lease is the run lease: an exclusive flock on the data directory itself.
type Lease struct {
	f *os.File
}

// AcquireLease takes the lease on dataDir, blocking until ctx is done.
func AcquireLease(ctx context.Context, dataDir string) (*Lease, error) {
	panic("not implemented")
}

// TryLease takes the lease without blocking; ErrLocked if held.
func TryLease(dataDir string) (*Lease, error) { panic("not implemented") }

// File returns the locked directory descriptor, for exec.Cmd.ExtraFiles.
func (l *Lease) File() *os.File { return l.f }

// Close closes this process's descriptor WITHOUT unlocking: a child that
// inherited the descriptor keeps the lease. Safe to call twice.
func (l *Lease) Close() error { panic("not implemented") }

// ProbeLease reports whether the lease on dataDir is held right now. It
// creates nothing and works on a read-only filesystem.
func ProbeLease(dataDir string) (held bool, err error) { panic("not implemented") }
