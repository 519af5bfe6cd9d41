// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package testproc

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// LimitFiles sets this process's RLIMIT_NOFILE, soft and hard, to the
// number in the environment variable env, for a helper that must work
// with few descriptors. It does nothing when env is unset.
func LimitFiles(env string) error {
	s := os.Getenv(env)
	if s == "" {
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %w", env, err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: n}); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	return nil
}
