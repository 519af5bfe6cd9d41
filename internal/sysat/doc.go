// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package sysat makes the descriptor-relative system calls of the module
// under golang.org/x/sys/unix's names and arguments, retrying EINTR; Openat
// also waits a bounded time when out of descriptors. Errors are the bare
// syscall.Errno, for the caller to wrap with its path. Close is not here:
// an interrupted close has still released the descriptor. It is Unix only.
package sysat
