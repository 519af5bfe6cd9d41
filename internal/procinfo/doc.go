// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package procinfo reads the identity of processes: whether a PID exists,
// whether it is a zombie, its kernel start time, its executable, and its
// boot and PID namespace. A PID is gone only when kill(pid, 0) says ESRCH,
// and only in the caller's PID namespace; /proc is trusted only once it
// shows the caller itself. (PID, StartTime, BootID) names one process.
// Lookup returns an error, never panics, on malformed kernel data, reports
// an unreadable executable in Info.ExecutableErr, and on Linux takes every
// field of one Info from the same process. Outside Linux and macOS every
// call returns an error wrapping ErrUnsupported.
package procinfo
