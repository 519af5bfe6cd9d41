// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package runner

import "golang.org/x/sys/unix"

// sessionID returns the session ID of the process pid, as getsid(2).
func sessionID(pid int) (int, error) { return unix.Getsid(pid) }
