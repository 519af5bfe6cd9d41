// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Bounds of the descriptor scan, so that a machine with a huge process
// table or a process with a huge descriptor table cannot make Attach run
// away: a runner gets its lease as descriptor 3, early in its table.
const (
	maxScanProcs = 1 << 16
	maxScanFDs   = 1 << 12
)

// dirHolders lists the processes of this user, other than this one, that
// hold an open descriptor on the directory dir (want is its Stat), from
// /proc/*/fd: a link whose text is dir's resolved path and whose target
// has want's device and inode. Processes it cannot read are skipped.
func dirHolders(dir string, want fs.FileInfo) ([]int, error) {
	target, err := resolvedPath(dir)
	if err != nil {
		return nil, err
	}
	proc, err := os.Open("/proc")
	if err != nil {
		return nil, fmt.Errorf("%w: list processes: %w", ErrUnattachable, err)
	}
	defer proc.Close()
	names, err := proc.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("%w: list processes: %w", ErrUnattachable, err)
	}
	self := os.Getpid()
	euid := uint32(os.Geteuid())
	var pids []int
	scanned := 0
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid == self {
			continue
		}
		if scanned++; scanned > maxScanProcs {
			break
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+name, &st) != nil || st.Uid != euid {
			continue
		}
		if holdsPath(name, target, want) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// holdsDir reports whether pid holds an open descriptor on dir.
func holdsDir(pid int, dir string, want fs.FileInfo) bool {
	target, err := resolvedPath(dir)
	return err == nil && holdsPath(strconv.Itoa(pid), target, want)
}

// holdsPath reports whether process pid (a /proc entry name) has a
// descriptor whose link reads target and whose file is want.
func holdsPath(pid, target string, want fs.FileInfo) bool {
	fdDir := "/proc/" + pid + "/fd"
	d, err := os.Open(fdDir)
	if err != nil {
		return false
	}
	defer d.Close()
	fds, _ := d.Readdirnames(maxScanFDs)
	for _, fd := range fds {
		link := fdDir + "/" + fd
		// The link text filters cheaply; the stat proves the same inode.
		if text, err := os.Readlink(link); err != nil || text != target {
			continue
		}
		if fi, err := os.Stat(link); err == nil && os.SameFile(fi, want) {
			return true
		}
	}
	return false
}

// resolvedPath is dir as the kernel names it in /proc/PID/fd: absolute,
// symlinks resolved.
func resolvedPath(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	return resolved, nil
}
