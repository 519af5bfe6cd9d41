// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package sysat makes the system calls that name a file relative to an
// open directory descriptor, retrying each one that a signal interrupts.
//
// It is the one syscall layer of packages fstree, datadir, procinfo,
// state and gc: openat, fstatat, unlinkat, mkdirat, renameat and the
// descriptor calls that go with them (fstat, fchmod, flock, read, ...).
// Each function has the name, arguments and results of its
// golang.org/x/sys/unix counterpart and differs in one way only: it
// retries while the call fails with EINTR, so callers never loop (and
// Openat also waits, a bounded time, for descriptors when the process is
// out of them; OpenatNow does not). Errors
// are the bare errno (a syscall.Errno), for the caller to wrap in an
// error naming its path. Close is not here: a close interrupted by a
// signal has still released the descriptor, so it must not be retried.
//
// Beyond x/sys/unix: DirFlags, the flags of every directory open (never
// through a symlink); StatxBytes and UnlinkatBytes, which hand the kernel
// a NUL-terminated name without copying it; and the file-type helpers
// (IsRegular, IsDir, IsSymlink, IsFIFO, FileType), so that every package
// judges a type the same way.
//
// The package is Unix only: outside Unix it has no files but this one.
package sysat
