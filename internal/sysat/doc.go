// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package sysat makes the module's descriptor-relative system calls under
// x/sys/unix's names, retrying EINTR; errors are the bare syscall.Errno.
// Close is not here: an interrupted close has released the descriptor.
package sysat
