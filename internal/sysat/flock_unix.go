// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package sysat

import "golang.org/x/sys/unix"

// Flock is flock(2), which AIX lacks.
func Flock(fd int, how int) error { return retry(func() error { return unix.Flock(fd, how) }) }
