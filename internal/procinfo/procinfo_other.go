// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux && !darwin

package procinfo

import (
	"errors"
	"fmt"
	"time"
)

func lookup(pid int) (Info, error) { return Info{}, unsupported("look up process") }

func bootID() (string, error) { return "", unsupported("read boot id") }

func bootTime() (time.Time, error) { return time.Time{}, unsupported("read boot time") }

func currentPIDNamespace() (PIDNamespace, error) {
	return PIDNamespace{}, unsupported("read pid namespace")
}

func nested(pid int) ([]Nested, error) { return nil, unsupported("look in other PID namespaces") }

func unsupported(what string) error { return fmt.Errorf("%s: %w", what, errors.ErrUnsupported) }
