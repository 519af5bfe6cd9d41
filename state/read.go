// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

import (
	"bytes"
	"encoding/json"
	"fmt"
)

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

// ReadFile reads and parses the state file at path. A missing file wraps
// fs.ErrNotExist; other failures are *fs.PathError, matching ErrNotRegular
// for anything but a regular file, or Parse's errors.
func ReadFile(path string) (*State, error) {
	return readPath(path)
}
