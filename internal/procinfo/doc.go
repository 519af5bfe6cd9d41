// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package procinfo reads the identity of processes: whether a PID exists,
// whether it is a zombie, its start time, executable, boot and PID
// namespace. A PID is gone only when kill(pid, 0) says ESRCH in the
// caller's PID namespace; /proc is trusted only once it shows the caller.
// (PID, StartTime, BootID) names one process. Outside Linux and macOS
// every call returns an error wrapping ErrUnsupported.
package procinfo
