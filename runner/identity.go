// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"fmt"
	"path/filepath"

	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// verifyRecord checks, with the collector's own decision (judge.Runner),
// that the runner recorded in st holds its PID, so gc and runner never
// disagree. It returns ErrNotRunning when a collector would call it gone,
// and errIdentityUnknown when it may run but cannot be confirmed.
func verifyRecord(st *state.State) (judge.Process, error) {
	if !st.Active {
		return judge.Process{}, fmt.Errorf("%w: state is inactive", ErrNotRunning)
	}
	if st.PID <= 0 {
		return judge.Process{}, fmt.Errorf("%w: no pid recorded", ErrNotRunning)
	}
	v := judge.Runner(st)
	switch {
	case v.Class == judge.ClassOrphan:
		return judge.Process{}, fmt.Errorf("%w: %s: %s", ErrNotRunning, v.Reason, v.Detail)
	case v.Class == judge.ClassLive && v.Reason == judge.ReasonRunnerMatches:
		return v.Process, nil
	}
	return judge.Process{}, fmt.Errorf("%w: pid %d may still run (%s): %s", errIdentityUnknown, st.PID, v.Reason, v.Detail)
}

// pidNamespace is the inode of this process's PID namespace, recorded
// with a runner it starts (which shares it) so that collectors in other
// namespaces leave the PID alone; 0 when it cannot be read, or on
// platforms without PID namespaces.
func pidNamespace() uint64 {
	ns, err := procinfo.CurrentPIDNamespace()
	if err != nil {
		return 0
	}
	return ns.Inode
}

// processName is the executable's base name, or the kernel's comm when the
// executable cannot be read (another user's process).
func processName(info procinfo.Info) string {
	if info.Executable != "" {
		return filepath.Base(info.Executable)
	}
	return info.Comm
}
