// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package runner

import (
	"fmt"
	"io/fs"
	"runtime"
)

// dirHolders cannot list a directory's holders here: macOS tells them only
// through libproc (proc_pidinfo), which this pure-Go build does not call.
func dirHolders(dir string, _ fs.FileInfo) ([]int, error) {
	return nil, fmt.Errorf("%w: %s cannot list the processes holding the lease on %s",
		ErrUnattachable, runtime.GOOS, dir)
}

// holdsDir is never reached where dirHolders finds nothing.
func holdsDir(int, string, fs.FileInfo) bool { return false }
