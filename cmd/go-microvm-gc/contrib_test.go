// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnits checks the units in contrib/systemd: an hourly timer, a
// service that runs collect with a metrics file and keeps /proc visible,
// and, where systemd-analyze exists, that systemd accepts both.
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "contrib", "systemd")
	service, err := os.ReadFile(filepath.Join(dir, "go-microvm-gc.service"))
	if err != nil {
		t.Fatal(err)
	}
	timer, err := os.ReadFile(filepath.Join(dir, "go-microvm-gc.timer"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/go-microvm-gc collect -q --metrics-file ", "SuccessExitStatus=75", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProcSubset=all"} {
		if !strings.Contains(string(service), want) {
			t.Errorf("the service lacks %q", want)
		}
	}
	// Hiding other users' processes would make live runners look dead.
	for _, bad := range []string{"ProtectProc=invisible", "ProtectProc=noaccess", "ProcSubset=pid", "PrivatePIDs=yes"} {
		if strings.Contains(string(service), "\n"+bad) {
			t.Errorf("the service sets %s", bad)
		}
	}
	if !strings.Contains(string(timer), "OnCalendar=hourly") {
		t.Errorf("the timer is not hourly")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// verify wants ExecStart to exist.
	unit := strings.ReplaceAll(string(service), "/usr/local/bin/go-microvm-gc", exe)
	if err := os.WriteFile(filepath.Join(tmp, "go-microvm-gc.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "go-microvm-gc.timer"), timer, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no",
		filepath.Join(tmp, "go-microvm-gc.service"), filepath.Join(tmp, "go-microvm-gc.timer")).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
