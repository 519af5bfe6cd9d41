// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// startSlack absorbs the rounding of a process start time derived from
// clock ticks, and the gap between a spawn and the recording of
// pid_start_time.
const startSlack = time.Second

// commLen is how much of a name the kernel keeps as a process's comm.
const commLen = 15

// verifyRecord checks that the runner recorded in st is the live process
// now holding its PID, strongest evidence first (see DESIGN.md): the
// recorded kernel start time and boot id; else a non-zero pid_start_time;
// else the executable's base name. It returns what the kernel says about
// the process when it is the runner, an error wrapping ErrNotRunning when
// it is not, and any other error when the identity cannot be read.
func verifyRecord(st *state.State) (procinfo.Info, error) {
	if !st.Active {
		return procinfo.Info{}, fmt.Errorf("%w: state is inactive", ErrNotRunning)
	}
	if st.PID <= 0 {
		return procinfo.Info{}, fmt.Errorf("%w: no pid recorded", ErrNotRunning)
	}
	exact := st.Runner != nil && st.Runner.StartTime != 0
	if exact && st.Runner.BootID != "" {
		if boot, err := procinfo.BootID(); err == nil && boot != st.Runner.BootID {
			return procinfo.Info{}, fmt.Errorf("%w: pid %d was recorded in boot %s, this is boot %s",
				ErrNotRunning, st.PID, st.Runner.BootID, boot)
		}
	}
	if !exact && !st.PIDStartTime.IsZero() {
		if boot, err := procinfo.BootTime(); err == nil && st.PIDStartTime.Before(boot.Add(-startSlack)) {
			return procinfo.Info{}, fmt.Errorf("%w: pid %d was recorded at %s, before this boot at %s",
				ErrNotRunning, st.PID, st.PIDStartTime.Format(time.RFC3339), boot.Format(time.RFC3339))
		}
	}

	info, err := procinfo.Lookup(st.PID)
	if errors.Is(err, procinfo.ErrNotExist) {
		return procinfo.Info{}, fmt.Errorf("%w: no process with pid %d", ErrNotRunning, st.PID)
	}
	if err != nil {
		return procinfo.Info{}, fmt.Errorf("read identity of pid %d: %w", st.PID, err)
	}
	if info.Zombie {
		return procinfo.Info{}, fmt.Errorf("%w: pid %d is a zombie", ErrNotRunning, st.PID)
	}
	switch {
	case exact:
		// Start time and boot pin the process exactly; the executable is
		// not compared, so a runner binary replaced by an upgrade while it
		// runs still matches.
		if info.StartTime != st.Runner.StartTime {
			return procinfo.Info{}, fmt.Errorf("%w: pid %d now names another process (start time %d, recorded %d)",
				ErrNotRunning, st.PID, info.StartTime, st.Runner.StartTime)
		}
	case !st.PIDStartTime.IsZero():
		// Two live processes never share a PID, so one that started no
		// later than the record is the recorded one, whatever its name.
		if info.Started.After(st.PIDStartTime.Add(startSlack)) {
			return procinfo.Info{}, fmt.Errorf("%w: pid %d now names a process started %s after the record",
				ErrNotRunning, st.PID, info.Started.Sub(st.PIDStartTime).Round(time.Millisecond))
		}
	default:
		if name := processName(info); !isRunnerName(name) {
			return procinfo.Info{}, fmt.Errorf("%w: pid %d runs %q, not %s",
				ErrNotRunning, st.PID, name, RunnerName)
		}
	}
	return info, nil
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
