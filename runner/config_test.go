// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The JSON in argv[1] keeps the released field names, and the start-up
// fields never reach the runner.
func TestConfigJSON(t *testing.T) {
	t.Parallel()
	cfg := Config{
		RootPath: "/d/rootfs-work", NumVCPUs: 2, RAMMiB: 512, NetSocket: "/d/net.sock",
		PortForwards: []PortForward{{Host: 8080, Guest: 80}},
		VirtioFS:     []VirtioFSMount{{Tag: "share", HostPath: "/srv"}, {Tag: "ro", HostPath: "/etc", ReadOnly: true}},
		VsockPorts:   []VsockPort{{Port: 1024, SocketPath: "/d/agent.sock"}, {Port: 1025, SocketPath: "/d/io.sock"}},
		ConsoleLog:   "/d/console.log", LogLevel: 3,
		LibDir: "/lib/krun", RunnerPath: "/bin/runner", VMLogPath: "/d/vm.log", Env: []string{"A=1"},
		UserNamespace: &UserNamespaceConfig{UID: 1000, GID: 1000},
	}
	got, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"root_path":"/d/rootfs-work","num_vcpus":2,"ram_mib":512,"net_sock_path":"/d/net.sock",` +
		`"port_forwards":[{"host":8080,"guest":80}],` +
		`"virtiofs_mounts":[{"tag":"share","path":"/srv"},{"tag":"ro","path":"/etc","read_only":true}],` +
		`"vsock_ports":[{"port":1024,"socket_path":"/d/agent.sock"},{"port":1025,"socket_path":"/d/io.sock"}],` +
		`"console_log_path":"/d/console.log","log_level":3}`
	if string(got) != want {
		t.Fatalf("config JSON\n got %s\nwant %s", got, want)
	}
	minimal, _ := json.Marshal(Config{RootPath: "/r"})
	if string(minimal) != `{"root_path":"/r","num_vcpus":0,"ram_mib":0}` {
		t.Fatalf("minimal config JSON %s", minimal)
	}
}

// The runner is found by explicit path, then PATH, then beside the
// current executable.
func TestFindRunner(t *testing.T) {
	// Not parallel: t.Setenv changes PATH for the whole process.
	inPath := t.TempDir()
	beside := t.TempDir()
	explicit := filepath.Join(t.TempDir(), "my-runner")
	notExec := filepath.Join(t.TempDir(), RunnerName)
	for _, p := range []string{filepath.Join(inPath, RunnerName), filepath.Join(beside, RunnerName), explicit} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	tests := []struct {
		name     string
		explicit string
		path     string
		exeDir   string
		want     string
	}{
		{"explicit wins", explicit, inPath, beside, explicit},
		{"PATH before beside", "", inPath, beside, filepath.Join(inPath, RunnerName)},
		{"beside the executable", "", empty, beside, filepath.Join(beside, RunnerName)},
		{"nowhere", "", empty, empty, ""},
		{"explicit missing", filepath.Join(empty, "nope"), inPath, beside, ""},
		{"explicit not executable", notExec, inPath, beside, ""},
		{"beside not executable", "", empty, filepath.Dir(notExec), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			got, err := findRunner(Config{RunnerPath: tt.explicit}, exec.LookPath, tt.exeDir)
			if tt.want == "" {
				if !errors.Is(err, ErrRunnerNotFound) {
					t.Fatalf("findRunner = %q, %v; want ErrRunnerNotFound", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("findRunner = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// LibDir is prepended to the loader's search path; Env is appended.
func TestRunnerEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		base []string
		cfg  Config
		want []string
	}{
		{"no lib dir", []string{"HOME=/h"}, Config{}, []string{"HOME=/h"}},
		{"lib dir, no previous", []string{"HOME=/h"}, Config{LibDir: "/krun"},
			[]string{"HOME=/h", libPathVar + "=/krun"}},
		{"lib dir prepended", []string{libPathVar + "=/usr/lib"}, Config{LibDir: "/krun"},
			[]string{libPathVar + "=/usr/lib", libPathVar + "=/krun:/usr/lib"}},
		{"empty previous", []string{libPathVar + "="}, Config{LibDir: "/krun"},
			[]string{libPathVar + "=", libPathVar + "=/krun"}},
		{"env appended", nil, Config{Env: []string{"A=1"}}, []string{"A=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runnerEnv(tt.base, tt.cfg); !slices.Equal(got, tt.want) {
				t.Fatalf("runnerEnv = %q, want %q", got, tt.want)
			}
		})
	}
}

// SpawnProcess starts the runner in its own session, with the library
// path it was given, and stops it.
func TestSpawnProcess(t *testing.T) {
	t.Parallel()
	ready := filepath.Join(t.TempDir(), "ready")
	p, err := SpawnProcess(testCtx(t), Config{
		RootPath: t.TempDir(), RunnerPath: standinPath, LibDir: "/opt/krun/lib",
		Env: []string{"STANDIN_READY=" + ready},
	})
	if err != nil {
		t.Fatal(err)
	}
	killOnCleanup(t, p.PID())
	readReady(t, ready)
	if p.DataDir() != "" {
		t.Errorf("DataDir %q without a claim", p.DataDir())
	}
	if sid, err := unix.Getsid(p.PID()); err != nil || sid != p.PID() {
		t.Errorf("runner session %d, %v; want its own (%d)", sid, err, p.PID())
	}
	// Linux shows a process's environment; elsewhere TestRunnerEnv covers it.
	if environ, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.PID()), "environ")); err == nil {
		vars := strings.Split(string(environ), "\x00")
		if !slices.ContainsFunc(vars, func(v string) bool {
			return v == libPathVar+"=/opt/krun/lib" || strings.HasPrefix(v, libPathVar+"=/opt/krun/lib:")
		}) {
			t.Errorf("runner environment lacks the lib dir: %q", vars)
		}
	}
	if err := stopWithGuard(t, p); err != nil {
		t.Fatal(err)
	}
	if !exited(p.PID()) {
		t.Fatal("runner running after Stop")
	}
}
