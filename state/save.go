// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// errReleased: writing without the lock would race other writers.
var errReleased = errors.New("state lock already released")

// Save writes the state with Version set to CurrentVersion, atomically and
// durably; the lock stays held. On error no temporary file is left and the
// old file is intact, unless only the directory flush failed.
//
// A save of another runner PID than loaded, under a loaded run marker,
// without that runner's identity, comes from a writer unaware of the marker
// (released microvm.Run with its own spawner): Save drops the marker and
// old identity, so collectors judge the PID by the released rules.
func (ls *LockedState) Save() error {
	if ls.released {
		return fmt.Errorf("save state in %s: %w", ls.m.dataDir, errReleased)
	}
	if ls.loaded.Leased && ls.Leased && ls.PID != 0 && ls.PID != ls.loaded.PID && ls.Runner == ls.loaded.Runner {
		ls.Leased = false
		ls.Runner = nil
	}
	ls.Version = CurrentVersion
	data, err := json.MarshalIndent(ls.State, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state for %s: %w", ls.m.statePath(), err)
	}
	return writeAtomic(ls.m.dataDir, FileName, append(data, '\n'))
}

// writeAtomic replaces dir/name with data through a flushed temporary file
// and a rename, then flushes dir so the rename itself survives a crash.
func writeAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, TempPattern)
	if err != nil {
		return fmt.Errorf("create temp state file: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			// After the rename this fails harmlessly with ENOENT.
			if rerr := os.Remove(tmpName); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, fmt.Errorf("remove temp state file: %w", rerr))
			}
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write temp state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync temp state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temp state file: %w", err)
	}
	if err := os.Rename(tmpName, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("replace state file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}

// Remove deletes the state file and flushes the data directory; the lock
// stays held until Release. A state file that is already gone is not an
// error. Remove after Release is an error.
func (ls *LockedState) Remove() error {
	if ls.released {
		return fmt.Errorf("remove state in %s: %w", ls.m.dataDir, errReleased)
	}
	if err := os.Remove(ls.m.statePath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove state file: %w", err)
	}
	if err := syncDir(ls.m.dataDir); err != nil {
		return fmt.Errorf("sync state directory: %w", err)
	}
	return nil
}
