// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/internal/testproc"
	"github.com/stacklok/go-microvm/state"
)

// TestRunnerInContainer: a released record whose PID an embedder in a
// container recorded as the container numbers it, dead in this namespace,
// is not taken over while the runner lives in the container (NewClaim
// refuses with ErrInUse, Attach neither attaches nor calls it gone), and
// is once the container is gone.
func TestRunnerInContainer(t *testing.T) {
	t.Parallel()
	pid := testproc.FreePID(t)
	stopContainer := testproc.RunnerInPIDNamespace(t, pid, "")
	dir := filepath.Join(t.TempDir(), "vm")
	writeState(t, dir, func(st *state.State) { st.Active, st.PID, st.PIDStartTime = true, pid, time.Now() })

	if _, err := newClaimWithGuard(t, dir, WithoutCollect()); !errors.Is(err, ErrInUse) {
		t.Fatalf("NewClaim while the runner lives in a container: %v, want ErrInUse", err)
	}
	if p, err := Attach(dir, WithStopTimeout(50*time.Millisecond)); err == nil || errors.Is(err, ErrNotRunning) {
		if err == nil {
			err = stopWithGuard(t, p)
		}
		t.Errorf("Attach: %v; want it refused as not confirmed", err)
	}
	if st := loadState(t, dir); !st.Active || st.PID != pid || st.Leased {
		t.Errorf("refused claim changed the state: %+v", st)
	}

	stopContainer()
	c, err := newClaimWithGuard(t, dir, WithoutCollect())
	if err != nil {
		t.Fatalf("NewClaim once the container is gone: %v", err)
	}
	_ = c.Abort()
}
