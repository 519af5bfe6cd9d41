// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package standin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Environment knobs (see the package doc).
const (
	// EnvIgnoreTerm=1 makes the stand-in and its child ignore SIGTERM.
	EnvIgnoreTerm = "STANDIN_IGNORE_TERM"
	// EnvChild=1 starts one child in the stand-in's process group.
	EnvChild = "STANDIN_CHILD"
	// EnvReady names the file that receives "PID[ CHILDPID]\n" when ready.
	EnvReady = "STANDIN_READY"
	// EnvWatch is the interval of the file watch over root_path.
	EnvWatch = "STANDIN_WATCH"
	// EnvReport names the file the watch appends its findings to.
	EnvReport = "STANDIN_REPORT"
	// EnvExitLeader=1 makes the main thread (the thread-group leader) exit
	// once ready, as a runner whose main thread called pthread_exit: the
	// process lives on in its other threads, shown as a zombie leader.
	EnvExitLeader = "STANDIN_EXIT_LEADER"
	// EnvLeaseFD is set by package runner when descriptor 3 is the lease.
	EnvLeaseFD = "GO_MICROVM_LEASE_FD"
)

// childArg in argv[1] selects the child mode.
const childArg = "--standin-child"

// config is the part of the released runner contract the stand-in reads;
// unknown fields are accepted, as a real runner accepts them.
type config struct {
	RootPath       string `json:"root_path"`
	NumVCPUs       uint32 `json:"num_vcpus"`
	RAMMiB         uint32 `json:"ram_mib"`
	ConsoleLogPath string `json:"console_log_path"`
}

// Main runs the stand-in with args as os.Args and returns the exit code:
// 0 after SIGTERM, 2 for a bad invocation, 1 for any other failure.
func Main(args []string) int {
	if len(args) >= 2 && args[1] == childArg {
		return childMain()
	}
	if len(args) != 2 {
		fmt.Fprintf(os.Stderr, "usage: %s CONFIG_JSON\n", filepath.Base(args[0]))
		return 2
	}
	var cfg config
	if err := json.Unmarshal([]byte(args[1]), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "go-microvm-runner stand-in: decode config: %v\n", err)
		return 2
	}
	if cfg.RootPath == "" {
		fmt.Fprintln(os.Stderr, "go-microvm-runner stand-in: config has no root_path")
		return 2
	}
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "go-microvm-runner stand-in: %v\n", err)
		return 1
	}
	return 0
}

// run serves one VM until SIGTERM.
func run(cfg config) error {
	// Signals first, so a SIGTERM sent as soon as we are ready is handled.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)

	root, err := os.Open(cfg.RootPath)
	if err != nil {
		return fmt.Errorf("open root: %w", err)
	}
	defer root.Close()
	if fi, err := root.Stat(); err != nil {
		return fmt.Errorf("stat root: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("root %s: not a directory", cfg.RootPath)
	}

	// The lease must stay open for as long as we live: an *os.File would
	// close it when collected, so the reference is kept to the end.
	var lease *os.File
	if os.Getenv(EnvLeaseFD) == "3" {
		lease = os.NewFile(3, "run-lease")
	}
	defer runtime.KeepAlive(lease)

	childPID := 0
	if os.Getenv(EnvChild) == "1" {
		pid, err := startChild(lease)
		if err != nil {
			return err
		}
		childPID = pid
	}

	if iv := os.Getenv(EnvWatch); iv != "" {
		d, err := time.ParseDuration(iv)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%q: not a positive duration", EnvWatch, iv)
		}
		w, err := newWatcher(cfg.RootPath, os.Getenv(EnvReport))
		if err != nil {
			return err
		}
		go w.loop(d)
	}

	fmt.Fprintf(os.Stderr, "go-microvm-runner stand-in: pid %d serving %s\n", os.Getpid(), cfg.RootPath)
	if path := os.Getenv(EnvReady); path != "" {
		line := fmt.Sprintf("%d\n", os.Getpid())
		if childPID != 0 {
			line = fmt.Sprintf("%d %d\n", os.Getpid(), childPID)
		}
		if err := writeAtomic(path, line); err != nil {
			return err
		}
	}

	ignore := os.Getenv(EnvIgnoreTerm) == "1"
	if os.Getenv(EnvExitLeader) == "1" {
		go func() {
			waitTerm(term, ignore)
			runtime.KeepAlive(lease)
			runtime.KeepAlive(root)
			os.Exit(0)
		}()
		exitLeader()
	}
	waitTerm(term, ignore)
	// The child is left alone on purpose: only a signal to the whole
	// process group, as package runner sends, reaches it.
	return nil
}

// waitTerm returns at the first SIGTERM, or never when told to ignore it.
func waitTerm(term <-chan os.Signal, ignore bool) {
	for range term {
		if !ignore {
			return
		}
	}
}

// startChild re-executes the stand-in as its child, in the same process
// group, sharing the lease.
func startChild(lease *os.File) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("start child: %w", err)
	}
	cmd := exec.Command(exe, childArg)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if lease != nil {
		cmd.ExtraFiles = []*os.File{lease}
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start child: %w", err)
	}
	// Reap it if it dies before us.
	go func() { _ = cmd.Wait() }()
	return cmd.Process.Pid, nil
}

// childMain sleeps until killed, ignoring SIGTERM when told to.
func childMain() int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ignore := os.Getenv(EnvIgnoreTerm) == "1"
	for range term {
		if !ignore {
			break
		}
	}
	return 0
}

// writeAtomic writes data to path through a rename, so a reader never
// sees a partial line.
func writeAtomic(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write ready file: %w", err)
	}
	return nil
}

// appendLine appends one line to the report file (stderr when unset).
func appendLine(path, line string) {
	var w io.Writer = os.Stderr
	if path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintf(os.Stderr, "go-microvm-runner stand-in: report: %v\n", err)
		} else {
			defer func() {
				// The line was written to this file: a failed close may
				// have lost it.
				if err := f.Close(); err != nil {
					fmt.Fprintf(os.Stderr, "go-microvm-runner stand-in: report: %v\n", err)
				}
			}()
			w = f
		}
	}
	if _, err := io.WriteString(w, line+"\n"); err != nil && !errors.Is(err, os.ErrClosed) {
		fmt.Fprintf(os.Stderr, "go-microvm-runner stand-in: report: %v\n", err)
	}
}
