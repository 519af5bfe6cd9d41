// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stacklok/go-microvm/gc"
)

// A runner started in a user namespace is leased, recorded, classified live,
// attached to from a fresh handle and stopped like any other, and the
// namespace maps the configured ids to the caller's.
func TestUserNamespaceRunner(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "vm")
	ctx := testCtx(t)
	c, err := NewClaim(ctx, dir, WithoutCollect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Abort() })
	if err := makeRootfs(dir); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	p, err := c.Spawn(ctx, Config{
		RootPath:      filepath.Join(dir, "rootfs-work"),
		RunnerPath:    standinPath,
		Env:           []string{"STANDIN_READY=" + ready},
		UserNamespace: &UserNamespaceConfig{UID: 1000, GID: 1001},
	})
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSPC) {
		t.Skipf("user namespaces are not allowed for uid %d here: %v", os.Getuid(), err)
	}
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, p.PID())
	readReady(t, ready)

	for file, want := range map[string]string{
		"uid_map": fmt.Sprintf("1000 %d 1", os.Getuid()),
		"gid_map": fmt.Sprintf("1001 %d 1", os.Getgid()),
	} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", p.PID(), file))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(strings.Fields(string(b)), " "); got != want {
			t.Errorf("runner's %s = %q, want %q", file, got, want)
		}
	}
	if !leaseHeld(t, dir) {
		t.Fatal("lease not held by the runner in a user namespace")
	}
	st := loadState(t, dir)
	if st.PID != p.PID() || st.Runner == nil || st.Runner.StartTime == 0 || !st.Leased {
		t.Fatalf("state = %+v (runner %+v), want pid %d with its identity and the run marker", st, st.Runner, p.PID())
	}
	if cand := candidate(t, root, dir); cand.Class != gc.ClassLive {
		t.Fatalf("runner in a user namespace classified %s (%s: %s), want live", cand.Class, cand.Reason, cand.Detail)
	}

	a, err := Attach(dir)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if a.PID() != p.PID() || !a.IsAlive() {
		t.Fatalf("attached pid %d alive %v, want %d alive", a.PID(), a.IsAlive(), p.PID())
	}
	if err := stopWithGuard(t, a); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	waitFor(t, "runner gone after Stop", func() bool { return exited(p.PID()) })
	if !leaseFreed(t, dir) {
		t.Error("lease still held after Stop")
	}
	if st := loadState(t, dir); st.Active || st.PID != 0 || st.Leased {
		t.Errorf("state after Stop = %+v, want inactive with no pid and no marker", st)
	}
}
