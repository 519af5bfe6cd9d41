// SPDX-License-Identifier: Apache-2.0

// THIS FILE IS THE AGREED API SKELETON. The runner helper replaces the
// panics with real code split into doc.go, config.go, spawn.go, claim.go,
// process.go, find.go; names and signatures below are relied on by
// cmd/go-microvm-gc and the stress tests. Adding is fine; changing needs
// the coordinator.

package runner

import (
	"context"
	"log/slog"
	"time"
)

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

// Config is the released runner contract, passed as JSON in argv[1].
type Config struct {
	RootPath       string          `json:"root_path"`
	NumVCPUs       uint32          `json:"num_vcpus"`
	RAMMiB         uint32          `json:"ram_mib"`
	NetSocket      string          `json:"net_sock_path,omitempty"`
	PortForwards   []PortForward   `json:"port_forwards,omitempty"`
	VirtioFS       []VirtioFSMount `json:"virtiofs_mounts,omitempty"`
	ConsoleLogPath string          `json:"console_log_path,omitempty"`
	LogLevel       uint32          `json:"log_level,omitempty"`

	LibDir     string `json:"-"` // library path for the runner (LD_LIBRARY_PATH / DYLD_LIBRARY_PATH)
	RunnerPath string `json:"-"` // explicit runner path; else PATH, else beside os.Executable
	VMLogPath  string `json:"-"` // runner stdout/stderr go here when set
}

// ProcessHandle controls a running runner (released contract).
type ProcessHandle interface {
	Stop(ctx context.Context) error
	IsAlive() bool
	PID() int
}

// Spawner starts runners (released contract).
type Spawner interface {
	Spawn(ctx context.Context, cfg Config) (ProcessHandle, error)
}

// DefaultSpawner spawns runners with SpawnProcess.
type DefaultSpawner struct{}

// Spawn implements Spawner.
func (DefaultSpawner) Spawn(ctx context.Context, cfg Config) (ProcessHandle, error) {
	return SpawnProcess(ctx, cfg)
}

// Process is a spawned (or attached) runner.
type Process struct {
	// unexported: pid, identity, dataDir, stop timeout, lease, etc.
}

// SpawnProcess starts the runner without a claim (released behaviour: no
// lease, PID identity only).
func SpawnProcess(ctx context.Context, cfg Config) (*Process, error) { panic("not implemented") }

// Stop implements ProcessHandle: SIGTERM to the process group, SIGKILL
// after the stop timeout, identity checked before every signal; then the
// state is made inactive and the marker cleared. Idempotent.
func (p *Process) Stop(ctx context.Context) error { panic("not implemented") }

// IsAlive implements ProcessHandle.
func (p *Process) IsAlive() bool { panic("not implemented") }

// PID implements ProcessHandle.
func (p *Process) PID() int { panic("not implemented") }

// Claim is a creation claim on a data directory: the run lease is held and
// the run marker is set.
type Claim struct {
	// unexported
}

// ClaimOption configures NewClaim (and Attach where it applies).
type ClaimOption func(*claimOptions)

type claimOptions struct {
	logger        *slog.Logger
	collect       bool
	collectRoot   string
	collectBudget time.Duration
	keepLease     bool
	stopTimeout   time.Duration
}

// NewClaim runs a bounded collection over the root (default: the parent of
// dataDir), then creates dataDir if needed, takes the run lease and sets
// the run marker under the state lock. Call it before cloning the rootfs.
func NewClaim(ctx context.Context, dataDir string, opts ...ClaimOption) (*Claim, error) {
	panic("not implemented")
}

// Spawn starts the runner handing it the lease, records active, pid,
// pid_start_time and the exact identity, then drops the embedder's copy of
// the lease (unless WithKeepLease).
func (c *Claim) Spawn(ctx context.Context, cfg Config) (*Process, error) { panic("not implemented") }

// Abort ends a claim that never spawned: marker cleared, lease dropped.
func (c *Claim) Abort() error { panic("not implemented") }

// Attach rebuilds a handle for the runner recorded in dataDir by an earlier
// process, checking its identity.
func Attach(dataDir string, opts ...ClaimOption) (*Process, error) { panic("not implemented") }
