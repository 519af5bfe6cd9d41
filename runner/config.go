// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

// RunnerName is the released runner executable's base name.
const RunnerName = "go-microvm-runner"

// PortForward maps a host port to a guest port (released contract).
type PortForward struct {
	// Host is the TCP port on the host's loopback address.
	Host uint16 `json:"host"`
	// Guest is the TCP port in the guest.
	Guest uint16 `json:"guest"`
}

// VirtioFSMount shares a host directory with the guest (released contract).
type VirtioFSMount struct {
	// Tag names the share in the guest.
	Tag string `json:"tag"`
	// HostPath is the shared host directory.
	HostPath string `json:"path"`
	// ReadOnly asks the runner to share the directory read-only.
	ReadOnly bool `json:"read_only,omitempty"`
}

// VsockPort connects a guest vsock port to a Unix socket on the host
// (released contract since v0.0.35). The released runner hands each entry
// to libkrun, which binds SocketPath when the VM starts; a guest that
// connects to Port reaches whoever accepts on that socket.
type VsockPort struct {
	// Port is the vsock port the guest connects to.
	Port uint32 `json:"port"`
	// SocketPath is the host path of the Unix socket; the released runner
	// refuses an empty one.
	SocketPath string `json:"socket_path"`
}

// UserNamespaceConfig asks for the runner to be started in a new Linux user
// namespace in which UID and GID map to the caller's real user and group
// (one id each), as released go-microvm does so that the runner holds
// credentials-changing capabilities inside the namespace only. It has no
// effect on other platforms.
type UserNamespaceConfig struct {
	// UID is the user id, inside the namespace, of the caller's real uid.
	UID uint32
	// GID is the group id, inside the namespace, of the caller's real gid.
	GID uint32
}

// Config is the released runner contract, passed as JSON in argv[1]. The
// fields tagged `json:"-"` configure how the runner is started and are
// never sent to it.
type Config struct {
	// RootPath is the guest's root filesystem directory.
	RootPath string `json:"root_path"`
	// NumVCPUs is the number of virtual CPUs.
	NumVCPUs uint32 `json:"num_vcpus"`
	// RAMMiB is the guest memory in MiB.
	RAMMiB uint32 `json:"ram_mib"`
	// NetSocket is the Unix socket of an external network provider; it
	// excludes PortForwards.
	NetSocket string `json:"net_sock_path,omitempty"`
	// PortForwards are served by the runner's own network when NetSocket
	// is empty.
	PortForwards []PortForward `json:"port_forwards,omitempty"`
	// VirtioFS lists the host directories shared with the guest.
	VirtioFS []VirtioFSMount `json:"virtiofs_mounts,omitempty"`
	// VsockPorts are wired by the runner in order; the key is left out
	// when there are none, so older runners see the JSON they know.
	VsockPorts []VsockPort `json:"vsock_ports,omitempty"`
	// ConsoleLog is the file that receives the guest console, if any.
	ConsoleLog string `json:"console_log_path,omitempty"`
	// LogLevel is the hypervisor's log verbosity, 0 to 5.
	LogLevel uint32 `json:"log_level,omitempty"`

	// LibDir is prepended to the runner's library search path
	// (LD_LIBRARY_PATH on Linux, DYLD_LIBRARY_PATH on macOS).
	LibDir string `json:"-"`
	// RunnerPath is an explicit runner executable; when empty the runner is
	// looked up in PATH, then beside the current executable.
	RunnerPath string `json:"-"`
	// VMLogPath receives the runner's stdout and stderr (appended) when set;
	// otherwise they go to the null device.
	VMLogPath string `json:"-"`
	// UserNamespace, when set, starts the runner in a new user namespace
	// (Linux only; see UserNamespaceConfig). The run lease, the recorded
	// identity, Stop and Attach work for such a runner as for any other:
	// the namespace changes its credentials, not its PID, its kernel start
	// time or the descriptors it inherits.
	UserNamespace *UserNamespaceConfig `json:"-"`
	// Env holds extra "KEY=value" entries appended to the runner's
	// environment, which is otherwise this process's environment.
	Env []string `json:"-"`
}
