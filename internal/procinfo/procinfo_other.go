// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux && !darwin

package procinfo

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

var errUnsupported = fmt.Errorf("process identity on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func lookup(int) (Info, error)                   { return Info{}, errUnsupported }
func nested(int) ([]Nested, error)               { return nil, errUnsupported }
func currentPIDNamespace() (PIDNamespace, error) { return PIDNamespace{}, errUnsupported }
func bootID() (string, error)                    { return "", errUnsupported }
func bootTime() (time.Time, error)               { return time.Time{}, errUnsupported }
