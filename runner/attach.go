// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"fmt"

	"github.com/stacklok/go-microvm/state"
)

// Attach rebuilds a handle for the runner recorded in dataDir by an earlier
// process, checking its identity: the recorded kernel start time and boot
// id when present, else the recorded pid_start_time, else the executable's
// base name (records of released versions). The handle pins the kernel
// start time it observed, so its Stop never signals a recycled PID.
// WithLogger and WithStopTimeout apply.
//
// Attach returns an error wrapping ErrNotRunning when the state is
// inactive or has no pid, or the runner is gone, a zombie, from an
// earlier boot, or its PID names another process; and the read error when
// the state or the identity cannot be read.
func Attach(dataDir string, opts ...ClaimOption) (*Process, error) {
	o := newOptions(opts)
	mgr := state.NewManager(dataDir)
	st, err := mgr.Load()
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", dataDir, err)
	}
	info, err := verifyRecord(st)
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", dataDir, err)
	}
	return &Process{
		pid:         st.PID,
		startTime:   info.StartTime,
		pidStarted:  st.PIDStartTime,
		dataDir:     dataDir,
		mgr:         mgr,
		logger:      o.logger,
		stopTimeout: o.stopTimeout,
		lockTimeout: o.lockTimeout,
	}, nil
}
