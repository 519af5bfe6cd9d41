// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package procinfo reads the identity of processes: whether a PID exists,
// whether it is a zombie, its kernel start time, its executable, and the
// boot and PID namespace it belongs to.
//
// Only kill(pid, 0) answering ESRCH proves that no process has a PID, and
// only in the caller's PID namespace (CurrentPIDNamespace says which):
// /proc may hide processes (hidepid=), be another namespace's, or be
// missing, so it is read only after checking that it shows the caller
// itself. A process is a zombie only when all its threads have exited: a
// thread-group leader that exited alone shows state Z while it lives on.
//
// A PID alone does not identify a process, since the kernel reuses PIDs; the
// pair (PID, StartTime) does, within one boot, and BootID says which boot.
// Lookup never panics on malformed kernel data: it returns an error.
// Lookup reports an unreadable executable (another user's process, a kernel
// thread, a zombie) in Info.ExecutableErr, not as a failure of the lookup.
// On Linux every field of one Info comes from the same process, even if its
// PID is reused while Lookup runs.
// On platforms other than Linux and macOS every call returns an error
// wrapping ErrUnsupported.
package procinfo
