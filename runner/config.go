// SPDX-License-Identifier: Apache-2.0

package runner

// RunnerName is the released runner executable's base name.
const RunnerName = "go-microvm-runner"

// PortForward maps a host port to a guest port (released contract).
type PortForward struct {
	Host  uint16 `json:"host"`
	Guest uint16 `json:"guest"`
}

// VirtioFSMount shares a host directory with the guest (released contract).
type VirtioFSMount struct {
	Tag      string `json:"tag"`
	HostPath string `json:"path"`
}

// Config is the released runner contract, passed as JSON in argv[1]. The
// fields tagged `json:"-"` configure how the runner is started and are
// never sent to it.
type Config struct {
	RootPath       string          `json:"root_path"`
	NumVCPUs       uint32          `json:"num_vcpus"`
	RAMMiB         uint32          `json:"ram_mib"`
	NetSocket      string          `json:"net_sock_path,omitempty"`
	PortForwards   []PortForward   `json:"port_forwards,omitempty"`
	VirtioFS       []VirtioFSMount `json:"virtiofs_mounts,omitempty"`
	ConsoleLogPath string          `json:"console_log_path,omitempty"`
	LogLevel       uint32          `json:"log_level,omitempty"`

	// LibDir is prepended to the runner's library search path
	// (LD_LIBRARY_PATH on Linux, DYLD_LIBRARY_PATH on macOS).
	LibDir string `json:"-"`
	// RunnerPath is an explicit runner executable; when empty the runner is
	// looked up in PATH, then beside the current executable.
	RunnerPath string `json:"-"`
	// VMLogPath receives the runner's stdout and stderr (appended) when set;
	// otherwise they go to the null device.
	VMLogPath string `json:"-"`
	// Env holds extra "KEY=value" entries appended to the runner's
	// environment, which is otherwise this process's environment.
	Env []string `json:"-"`
}
