// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
)

// envRoot lists the roots, separated like PATH, when no --root is given.
const envRoot = "GO_MICROVM_GC_ROOT"

// envDataDir is released go-microvm's override of its data directory.
const envDataDir = "GO_MICROVM_DATA_DIR"

// roots is what one run works on: dirs are the existing roots, absolute
// and each once; missing are the default roots looked at when none of them
// exists (then there is nothing to do).
type roots struct {
	dirs    []string
	missing []string
}

// resolveRoots picks the roots: every --root, else GO_MICROVM_GC_ROOT,
// else the default roots that exist. A root named by hand that does not
// exist or is not a directory is a usage error; a missing default root
// only means there is nothing there.
func resolveRoots(flagRoots []string) (roots, error) {
	if len(flagRoots) > 0 {
		return namedRoots(flagRoots, "--root")
	}
	env := slices.DeleteFunc(filepath.SplitList(os.Getenv(envRoot)), func(r string) bool { return r == "" })
	if len(env) > 0 {
		return namedRoots(env, envRoot)
	}
	defaults, err := defaultRoots()
	if err != nil {
		return roots{}, err
	}
	var rs roots
	for _, r := range defaults {
		if fi, err := os.Stat(r); err == nil && fi.IsDir() {
			rs.add(r)
		}
	}
	if len(rs.dirs) == 0 {
		rs.missing = defaults
	}
	return rs, nil
}

// namedRoots resolves the roots named by hand in source (a flag or the
// environment): each must be an existing directory.
func namedRoots(named []string, source string) (roots, error) {
	var rs roots
	for _, r := range named {
		abs, err := filepath.Abs(r)
		if err != nil {
			return roots{}, fmt.Errorf("resolve root: %w", err)
		}
		fi, err := os.Stat(abs)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return roots{}, usagef("%s: root does not exist (from %s)", abs, source)
		case err != nil:
			return roots{}, fmt.Errorf("stat root: %w", err)
		case !fi.IsDir():
			return roots{}, usagef("%s: root is not a directory (from %s)", abs, source)
		}
		rs.add(abs)
	}
	return rs, nil
}

func (rs *roots) add(dir string) {
	if !slices.Contains(rs.dirs, dir) {
		rs.dirs = append(rs.dirs, dir)
	}
}

// defaultRoots are released go-microvm's data directories:
// $GO_MICROVM_DATA_DIR when absolute (a relative one is relative to the
// embedder's working directory) and ~/.config/go-microvm, since each
// embedder runs with its own environment. Not an embedder's directory: its
// sessions are the embedder's to judge. Not $XDG_CONFIG_HOME, which
// released go-microvm ignores.
func defaultRoots() ([]string, error) {
	var rs []string
	if dir := os.Getenv(envDataDir); filepath.IsAbs(dir) {
		rs = append(rs, filepath.Clean(dir))
	}
	home, err := os.UserHomeDir()
	if err == nil {
		rs = append(rs, filepath.Join(home, ".config", "go-microvm"))
	}
	if len(rs) == 0 {
		return nil, usagef("find default root: %v (use --root or %s)", err, envRoot)
	}
	return rs, nil
}

// missingMessage says which default roots were looked at and how to point
// the command elsewhere.
func missingMessage(missing []string, what string) string {
	quoted := make([]string, len(missing))
	for i, m := range missing {
		quoted[i] = quote(m)
	}
	return fmt.Sprintf("No root found (looked at %s); nothing to %s. Use --root DIR or %s=DIR[:DIR...] to point elsewhere.",
		strings.Join(quoted, ", "), what, envRoot)
}

// checkRootSafe refuses to collect in /, in any user's home directory and
// in any directory above one: those hold people's own files, and a stray
// state file somewhere below must not turn them into a sweep. A directory
// below a home directory (~/.config/go-microvm) is fine.
func checkRootSafe(root string) error {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		real = root
	}
	hint := "point --root at the directory that holds the VMs' data directories, or add --allow-any-root to insist"
	if real == "/" {
		return usagef("refusing to collect in %s: it is the filesystem root, not a go-microvm root; %s", quote(root), hint)
	}
	for _, home := range homeDirs() {
		if real == home || strings.HasPrefix(home, real+string(filepath.Separator)) {
			return usagef("refusing to collect in %s: it holds the home directory %s, not only go-microvm's data; %s", quote(root), quote(home), hint)
		}
	}
	return nil
}

// homeDirs lists /home, /Users, $HOME, this account's home (for when
// $HOME is unset) and every home in /etc/passwd, symlinks resolved.
func homeDirs() []string {
	homes := []string{"/home", "/Users", os.Getenv("HOME")}
	if u, err := user.Current(); err == nil {
		homes = append(homes, u.HomeDir)
	}
	if data, err := os.ReadFile("/etc/passwd"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Split(line, ":"); len(f) >= 6 {
				homes = append(homes, f[5])
			}
		}
	}
	var out []string
	for _, h := range homes {
		if !filepath.IsAbs(h) {
			continue
		}
		if r, err := filepath.EvalSymlinks(h); err == nil {
			h = r
		}
		out = append(out, filepath.Clean(h))
	}
	return out
}
