// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package gc

import (
	"fmt"
	"os"
)

// collectReport is Linux-only: it prepares a /proc of another kind first.
func collectReport(string) int {
	fmt.Fprintln(os.Stderr, "collect-report needs Linux")
	return 2
}
