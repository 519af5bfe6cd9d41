// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package runner

import "syscall"

// applyUserNamespace does nothing: user namespaces are Linux only, and
// released go-microvm ignores the setting elsewhere too.
func applyUserNamespace(*syscall.SysProcAttr, *UserNamespaceConfig) error { return nil }

// userNamespaceHint has nothing to explain where there are no user
// namespaces.
func userNamespaceHint(*syscall.SysProcAttr, error) string { return "" }
