// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
)

// parseProcArgs2 returns the executable path from a macOS kern.procargs2
// buffer: a 4-byte argc, then the path given to execve, NUL-terminated
// (then argv and the environment, not needed here). It lives in a file
// without build tags so that it is tested on every platform.
func parseProcArgs2(buf []byte) (string, error) {
	if len(buf) < 4 {
		return "", fmt.Errorf("parse procargs2: %d bytes, too short for argc", len(buf))
	}
	path, _, ok := bytes.Cut(buf[4:], []byte{0})
	if !ok {
		return "", errors.New("parse procargs2: executable path not NUL-terminated")
	}
	// A relative path was relative to the process's initial working
	// directory, which another process cannot know.
	if !filepath.IsAbs(string(path)) {
		return "", fmt.Errorf("parse procargs2: executable path %q is not absolute", path)
	}
	return string(path), nil
}
