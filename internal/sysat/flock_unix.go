// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package sysat

import "golang.org/x/sys/unix"

// Flock applies the flock(2) operation how to fd. With unix.LOCK_NB in
// how, a lock held elsewhere fails with EWOULDBLOCK at once. AIX has no
// flock.
func Flock(fd int, how int) error {
	return retry(func() error { return unix.Flock(fd, how) })
}
