// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux && !darwin

package procinfo

import (
	"fmt"
	"time"
)

func lookup(pid int) (Info, error) {
	return Info{}, fmt.Errorf("look up process %d: %w", pid, ErrUnsupported)
}

func bootID() (string, error) {
	return "", fmt.Errorf("read boot id: %w", ErrUnsupported)
}

func bootTime() (time.Time, error) {
	return time.Time{}, fmt.Errorf("read boot time: %w", ErrUnsupported)
}

func currentPIDNamespace() (PIDNamespace, error) {
	return PIDNamespace{}, fmt.Errorf("read pid namespace: %w", ErrUnsupported)
}

func nested(pid int) ([]Nested, error) {
	return nil, fmt.Errorf("look for process %d in other PID namespaces: %w", pid, ErrUnsupported)
}
