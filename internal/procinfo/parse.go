// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

// The kernels' formats, parsed without build tags so that they are tested
// and fuzzed on every platform.

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
)

// Stat is the part of a Linux /proc/PID/stat line that identifies a process.
type Stat struct {
	PID   int
	Comm  string
	State byte
	// StartTime is field 22: clock ticks since boot.
	StartTime uint64
}

// statFieldsAfterComm is how many fields follow comm up to and including
// field 22 (starttime): fields 3 to 22.
const statFieldsAfterComm = 22 - 2

// ParseStat parses one Linux /proc/PID/stat line. It returns a descriptive
// error, never a panic, for anything malformed: missing parentheses, a
// non-numeric PID or start time, a state that is not one byte, or fewer
// than 22 fields.
func ParseStat(data []byte) (Stat, error) {
	// comm is whatever the process named itself, spaces, parentheses and
	// newlines included, so it is delimited by the first '(' (the PID
	// before it has only digits) and the LAST ')' (the fields after it
	// are numbers and a state letter).
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return Stat{}, errors.New("parse stat: no command name in parentheses")
	}
	pidField, ok := bytes.CutSuffix(data[:open], []byte(" "))
	if !ok {
		return Stat{}, errors.New("parse stat: no space between pid and command name")
	}
	pid, err := strconv.Atoi(string(pidField))
	if err != nil || pid <= 0 {
		return Stat{}, fmt.Errorf("parse stat: bad pid %q", pidField)
	}
	rest, ok := bytes.CutPrefix(data[end+1:], []byte(" "))
	if !ok {
		return Stat{}, errors.New("parse stat: no space after command name")
	}
	fields := bytes.Fields(rest)
	if len(fields) < statFieldsAfterComm {
		return Stat{}, fmt.Errorf("parse stat: %d fields after command name, want at least %d", len(fields), statFieldsAfterComm)
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

// zombieState reports whether a /proc/PID/stat state means the process has
// exited: Z (zombie, not yet reaped), X and, before Linux 3.x, x (dead).
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
	// A relative path was relative to the process's initial working
	// directory, which another process cannot know.
	if !filepath.IsAbs(string(path)) {
		return "", fmt.Errorf("parse procargs2: executable path %q is not absolute", path)
	}
	return string(path), nil
}
