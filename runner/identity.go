// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// commLen is how much of a name the kernel keeps as a process's comm.
const commLen = 15

// verifyRecord checks that the runner recorded in st is the live process
// now holding its PID. It makes no decision of its own: it asks
// gc.JudgeRunner, the identity decision a collector applies, so that a
// runner a collector keeps is never called gone here, and the reverse.
//
// It returns what was observed at the PID when that is the recorded
// runner; an error wrapping ErrNotRunning when a collector would call it
// gone (inactive, no pid, dead, a zombie with no live thread, an earlier
// boot, the PID reused); and an error wrapping errIdentityUnknown when it
// may still run but cannot be confirmed (its identity unreadable, only
// the wall clock against it, or its PID in another PID namespace): a
// collector keeps such a directory, and so it is neither signalled nor
// taken over.
func verifyRecord(st *state.State) (gc.Process, error) {
	if !st.Active {
		return gc.Process{}, fmt.Errorf("%w: state is inactive", ErrNotRunning)
	}
	if st.PID <= 0 {
		return gc.Process{}, fmt.Errorf("%w: no pid recorded", ErrNotRunning)
	}
	v := gc.JudgeRunner(st)
	switch {
	case v.Class == gc.ClassOrphan:
		return gc.Process{}, fmt.Errorf("%w: %s: %s", ErrNotRunning, v.Reason, v.Detail)
	case v.Class == gc.ClassLive && v.Reason == gc.ReasonRunnerMatches:
		return v.Process, nil
	}
	return gc.Process{}, fmt.Errorf("%w: pid %d may still run (%s): %s", errIdentityUnknown, st.PID, v.Reason, v.Detail)
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

// isRunnerName reports whether name is RunnerName or the kernel's
// truncation of it.
func isRunnerName(name string) bool {
	return name == RunnerName || (len(name) >= commLen && strings.HasPrefix(RunnerName, name))
}
