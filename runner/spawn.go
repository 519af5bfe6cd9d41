// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// LeaseFDEnv names the environment variable that tells a runner which
// descriptor holds the run lease; runners must keep it open and may ignore
// the variable.
const LeaseFDEnv = "GO_MICROVM_LEASE_FD"

// leaseFD is where the lease lands in the runner: the first ExtraFiles entry.
const leaseFD = 3

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

// Spawn is SpawnProcess, under the name released go-microvm first gave it.
//
// Deprecated: Use SpawnProcess, DefaultSpawner or, to have the run
// protected by a lease, NewClaim and (*Claim).Spawn.
func Spawn(ctx context.Context, cfg Config) (*Process, error) {
	return SpawnProcess(ctx, cfg)
}

// SpawnProcess starts the runner as (*Claim).Spawn does when this process
// keeps the lease of the directory of cfg.VMLogPath (see gc.WithCreating),
// else as released versions do, without a lease. It returns
// ErrRunnerNotFound when no runner executable is found, the exec error when
// it cannot start, and leaves no process behind on error.
func SpawnProcess(ctx context.Context, cfg Config) (*Process, error) {
	if c := keptClaim(cfg); c != nil {
		return c.Spawn(ctx, cfg)
	}
	l, err := prepareRunner(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	st, err := l.start()
	if err != nil {
		return nil, err
	}
	return newSpawned(st, nil, newOptions(nil)), nil
}

// keptClaim returns the claim this process keeps on the data directory
// of cfg's vm.log, or nil.
func keptClaim(cfg Config) *Claim {
	if cfg.VMLogPath == "" {
		return nil
	}
	dir, err := filepath.Abs(filepath.Dir(cfg.VMLogPath))
	if err != nil {
		return nil
	}
	lease := state.Kept(dir)
	if lease == nil {
		return nil
	}
	return &Claim{dataDir: dir, opts: newOptions(nil), lease: lease}
}

// started is a freshly started runner.
type started struct {
	pid    int
	at     time.Time // wall clock just after the spawn
	info   procinfo.Info
	infoOK bool
	exe    string // absolute path we executed
	exited chan struct{}
}

// launch is a runner ready to start: everything that may fail slowly
// (the executable search, the log file) is done, so that a caller holding
// the state lock across start holds it only for the fork and exec.
type launch struct {
	cmd     *exec.Cmd
	path    string
	logFile *os.File // nil without VMLogPath
}

// prepareRunner builds the command of the runner described by cfg, handing
// it lease (when non-nil) as descriptor 3. On error nothing is left open.
func prepareRunner(ctx context.Context, cfg Config, lease *os.File) (*launch, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("spawn runner: %w", err)
	}
	path, err := findRunner(cfg, exec.LookPath, executableDir())
	if err != nil {
		return nil, fmt.Errorf("spawn runner: %w", err)
	}
	arg, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("spawn runner: encode config: %w", err)
	}

	// Not CommandContext: the runner must outlive ctx and this process.
	cmd := exec.Command(path, string(arg))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cfg.UserNamespace != nil {
		if err := applyUserNamespace(cmd.SysProcAttr, cfg.UserNamespace); err != nil {
			return nil, fmt.Errorf("spawn runner: %w", err)
		}
	}
	var extra []string
	if lease != nil {
		cmd.ExtraFiles = []*os.File{lease}
		extra = append(extra, fmt.Sprintf("%s=%d", LeaseFDEnv, leaseFD))
	}
	cmd.Env = runnerEnv(os.Environ(), cfg, extra...)
	l := &launch{cmd: cmd, path: path}
	if cfg.VMLogPath != "" {
		logFile, err := os.OpenFile(cfg.VMLogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("spawn runner: open vm log: %w", err)
		}
		cmd.Stdout = logFile
		cmd.Stderr = logFile
		l.logFile = logFile
	}
	return l, nil
}

// close releases what prepareRunner opened, for a launch that will not
// start.
func (l *launch) close() {
	if l.logFile != nil {
		_ = l.logFile.Close()
	}
}

// start starts the runner, reads its identity and reaps it in the
// background. The launch cannot be started again.
func (l *launch) start() (*started, error) {
	// The child has its own copy of the log after Start; ours is not needed.
	defer l.close()
	if err := l.cmd.Start(); err != nil {
		if hint := userNamespaceHint(l.cmd.SysProcAttr, err); hint != "" {
			return nil, fmt.Errorf("spawn runner %s: %w (%s)", l.path, err, hint)
		}
		return nil, fmt.Errorf("spawn runner %s: %w", l.path, err)
	}
	cmd := l.cmd
	st := &started{pid: cmd.Process.Pid, at: time.Now(), exe: l.path, exited: make(chan struct{})}
	// Until the reaper below runs, the child cannot be reaped, so its PID
	// and start time are certainly its own.
	if info, err := procinfo.Lookup(st.pid); err == nil {
		st.info, st.infoOK = info, true
	}
	go func() {
		// Reaping here keeps a runner that exits while we live from
		// lingering as a zombie; its exit status is not part of the contract.
		_ = cmd.Wait()
		close(st.exited)
	}()
	return st, nil
}
