// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/stacklok/go-microvm/internal/datadir"
)

// The released package's unexported names, kept so that its own tests compile.
const (
	stateFileName = datadir.FileName
	lockFileName  = datadir.LockFileName
	stateVersion  = 1
)

// File names inside a data directory, as released go-microvm uses them.
const (
	FileName       = stateFileName       // the state file
	LockFileName   = lockFileName        // the state lock, flocked by writers
	TempPattern    = "state-*.json.tmp"  // os.CreateTemp pattern of saves
	CurrentVersion = stateVersion        // written, and the newest understood
	MaxFileSize    = datadir.MaxFileSize // cap on what is read of a state file
)

// Errors returned wrapped in an error naming the path; test with errors.Is.
var (
	ErrNotRegular   = datadir.ErrNotRegular // state or lock file not a regular file
	ErrTooLarge     = datadir.ErrTooLarge   // state file over MaxFileSize
	ErrCorrupt      = errors.New("state file is not valid JSON")
	ErrNewerVersion = errors.New("state file version is newer than understood")
	ErrLocked       = datadir.ErrLocked // a non-blocking attempt found the lock held
)

// State is the persisted record of one VM in released go-microvm's format;
// fields after CreatedAt are additive and dropped by released writers.
type State struct {
	Version  int    `json:"version"`
	Active   bool   `json:"active"`
	Name     string `json:"name"`
	Image    string `json:"image"`
	CPUs     uint32 `json:"cpus"`
	MemoryMB uint32 `json:"memory_mb"`
	PID      int    `json:"pid,omitempty"`
	// PIDStartTime is the wall clock just after the spawn.
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
	// StartTime is the kernel's start time: Linux clock ticks since boot
	// (/proc/PID/stat field 22), macOS microseconds since the epoch.
	StartTime    uint64 `json:"start_time"`
	BootID       string `json:"boot_id"`                 // the boot it ran in
	Executable   string `json:"executable,omitempty"`    // absolute path
	PIDNamespace uint64 `json:"pid_namespace,omitempty"` // its inode; 0 unknown
}

// Manager reads and writes the state of one data directory.
type Manager struct {
	dataDir string
	// afterLock is a test's hook (see tryLease); a pointer keeps Manager
	// comparable, as released Manager is.
	afterLock *func(path string)
}

// NewManager returns a Manager for dataDir. It touches no file.
func NewManager(dataDir string) *Manager { return &Manager{dataDir: dataDir} }

func (m *Manager) statePath() string { return filepath.Join(m.dataDir, FileName) }

// LockPath returns the path of the state lock file in the data directory,
// for a caller's errors (runner's lock wait names it).
func (m *Manager) LockPath() string { return filepath.Join(m.dataDir, LockFileName) }

// Load reads the state without locking; a missing file is a fresh default
// state, as released. Other errors are ReadFile's; a bad file's says "parse
// state file", as released.
func (m *Manager) Load() (*State, error) {
	s, err := ReadFile(m.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return &State{Version: CurrentVersion, CreatedAt: time.Now()}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	return s, nil
}

// Parse decodes a state file's bytes: over MaxFileSize is ErrTooLarge, not a
// JSON object of State is ErrCorrupt, a version above CurrentVersion is
// ErrNewerVersion. Unknown fields are ignored.
func Parse(data []byte) (*State, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxFileSize)
	}
	// json.Unmarshal accepts "null" into a struct as a no-op, which would
	// make an all-zero state out of a file that holds no state at all.
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrCorrupt)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if s.Version > CurrentVersion {
		return nil, fmt.Errorf("%w: version %d, newest understood %d", ErrNewerVersion, s.Version, CurrentVersion)
	}
	if s.Version < 0 {
		return nil, fmt.Errorf("%w: negative version %d", ErrCorrupt, s.Version)
	}
	return &s, nil
}
