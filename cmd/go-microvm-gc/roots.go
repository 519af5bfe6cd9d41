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

// envRoot lists the roots to work on, separated like PATH, when no --root
// is given.
const envRoot = "GO_MICROVM_GC_ROOT"

// roots is what one run works on.
type roots struct {
	// dirs are the existing roots, absolute and without duplicates.
	dirs []string
	// missing are the default roots looked at when none of them exists;
	// then there is nothing to do.
	missing []string
}

// resolveRoots picks the roots: every --root, else GO_MICROVM_GC_ROOT,
// else the default roots that exist. A root named by hand (flag or
// environment) that does not exist or is not a directory is a usage error;
// a missing default root only means there is nothing there.
func resolveRoots(flagRoots []string) (roots, error) {
	if len(flagRoots) > 0 {
		return namedRoots(flagRoots, "--root")
	}
	if named := envRoots(); len(named) > 0 {
		return namedRoots(named, envRoot)
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

// envRoots lists the roots GO_MICROVM_GC_ROOT names, skipping empty
// entries.
func envRoots() []string {
	var named []string
	for _, r := range filepath.SplitList(os.Getenv(envRoot)) {
		if r != "" {
			named = append(named, r)
		}
	}
	return named
}

// namedRoots resolves the roots named by hand, from source (a flag or the
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

// add adds dir to the roots, unless it is there already.
func (rs *roots) add(dir string) {
	if !slices.Contains(rs.dirs, dir) {
		rs.dirs = append(rs.dirs, dir)
	}
}

// envDataDir is released go-microvm's override of its default data
// directory.
const envDataDir = "GO_MICROVM_DATA_DIR"

// defaultRoots are go-microvm's own: the data directory released
// go-microvm uses ($GO_MICROVM_DATA_DIR, else ~/.config/go-microvm).
// ~/.config/go-microvm is looked at even when the variable is set, since
// every embedder runs with its own environment; resolveRoots keeps the
// ones that exist, once each. An embedder's directory (brood-box's
// ~/.config/broodbox/vms) is not one: whether its sessions are still in
// use is the embedder's to judge, and the command has no veto.
// XDG_CONFIG_HOME is not consulted: released go-microvm does not follow
// it, so a root taken from it would miss the real VMs.
func defaultRoots() ([]string, error) {
	home, herr := os.UserHomeDir()
	var rs []string
	// A relative value names a directory relative to the embedder's
	// working directory, which the collector cannot know.
	if dir := os.Getenv(envDataDir); filepath.IsAbs(dir) {
		rs = append(rs, filepath.Clean(dir))
	}
	if herr == nil {
		rs = append(rs, filepath.Join(home, ".config", "go-microvm"))
	}
	if len(rs) == 0 {
		return nil, usagef("find default root: %v (use --root or %s)", herr, envRoot)
	}
	return rs, nil
}

// missingMessage says which default roots were looked at and how to point
// the command elsewhere.
func missingMessage(missing []string, what string) string {
	return fmt.Sprintf("No root found (looked at %s); nothing to %s. Use --root DIR or %s=DIR[:DIR...] to point elsewhere.",
		strings.Join(quoteAll(missing), ", "), what, envRoot)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = quote(s)
	}
	return out
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

// homeDirs lists the home directories of the system's users, as
// /etc/passwd names them, this user's ($HOME, and the account's when $HOME
// is unset, as under cron or env -i), and /home and /Users, where homes
// are made; each is resolved when it exists.
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
