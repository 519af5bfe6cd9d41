// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// findRunner resolves the runner executable: cfg.RunnerPath when set, else
// RunnerName in PATH, else RunnerName in exeDir (the directory of the
// current executable; "" skips that step). The result is absolute.
func findRunner(cfg Config, lookPath func(string) (string, error), exeDir string) (string, error) {
	if cfg.RunnerPath != "" {
		if err := checkExecutable(cfg.RunnerPath); err != nil {
			return "", fmt.Errorf("find runner %s: %w: %w", cfg.RunnerPath, ErrRunnerNotFound, err)
		}
		return filepath.Abs(cfg.RunnerPath)
	}
	if p, err := lookPath(RunnerName); err == nil {
		return filepath.Abs(p)
	}
	if exeDir != "" {
		p := filepath.Join(exeDir, RunnerName)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("find runner %s: %w (searched PATH and %q)", RunnerName, ErrRunnerNotFound, exeDir)
}

// checkExecutable reports why path is not a regular executable file.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not executable", path)
	}
	return nil
}

// executableDir is the directory of the current executable, "" when unknown.
func executableDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	return filepath.Dir(exe)
}

// runnerEnv is base with cfg.LibDir prepended to the library path variable
// and cfg.Env appended; later entries win, as in exec.Cmd.
func runnerEnv(base []string, cfg Config, extra ...string) []string {
	env := make([]string, 0, len(base)+len(cfg.Env)+len(extra)+1)
	env = append(env, base...)
	if cfg.LibDir != "" {
		val := cfg.LibDir
		prefix := libPathVar + "="
		for i := len(base) - 1; i >= 0; i-- {
			if old, ok := strings.CutPrefix(base[i], prefix); ok {
				if old != "" {
					val += string(os.PathListSeparator) + old
				}
				break
			}
		}
		env = append(env, prefix+val)
	}
	env = append(env, cfg.Env...)
	return append(env, extra...)
}
