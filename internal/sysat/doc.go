// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package sysat is the one home of the system calls that name a file
// relative to an open directory descriptor (the *at family: openat,
// fstatat, unlinkat, mkdirat, renameat, and the descriptor calls that go
// with them), for packages fstree, datadir, state and gc.
//
// Each function has the name, arguments and results of its
// golang.org/x/sys/unix counterpart and differs in one way only: it
// retries while a signal interrupts the call (EINTR), so callers never
// loop. Errors are the bare errno (a syscall.Errno), for the caller to
// wrap in an error naming its path. Close is not here: a close interrupted
// by a signal has still released the descriptor, so it must not be
// retried, and unix.Close is called as it is.
//
// The file-type helpers (IsRegular, IsDir, IsSymlink, IsFIFO, FileType)
// read a stat's st_mode, so that every package judges a type the same way.
//
// The package is Unix only; it has no files elsewhere but this one.
package sysat
