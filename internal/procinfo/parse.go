// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

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

// statFieldsAfterComm counts fields 3 to 22 (starttime).
const statFieldsAfterComm = 22 - 2

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
