// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"
	"os"
	"syscall"
)

// applyUserNamespace makes the runner start in a new user namespace where
// ns.UID and ns.GID are this process's real uid and gid. The kernel wants
// setgroups denied before an unprivileged gid_map is written; the runtime
// does that because GidMappingsEnableSetgroups stays false.
func applyUserNamespace(attr *syscall.SysProcAttr, ns *UserNamespaceConfig) error {
	attr.Cloneflags |= syscall.CLONE_NEWUSER
	attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: int(ns.UID), HostID: os.Getuid(), Size: 1}}
	attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: int(ns.GID), HostID: os.Getgid(), Size: 1}}
	return nil
}

// userNamespaceHint explains a start that failed because user namespaces
// are not allowed: EPERM, or EINVAL on kernels that refuse CLONE_NEWUSER
// that way.
func userNamespaceHint(attr *syscall.SysProcAttr, err error) string {
	if attr == nil || attr.Cloneflags&syscall.CLONE_NEWUSER == 0 {
		return ""
	}
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) {
		return "user namespaces may be disabled: check the sysctls kernel.unprivileged_userns_clone and user.max_user_namespaces"
	}
	return ""
}
