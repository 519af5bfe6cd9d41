// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"bytes"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// procLocksPath is the kernel's table of file locks.
const procLocksPath = "/proc/locks"

// maxProcLocks caps what is read of the lock table: past it the table is
// ignored and every directory is probed, as where there is no table.
const maxProcLocks = 64 << 20

// fileKey names an inode: the kernel's device number (major, minor) and
// the inode number.
type fileKey struct {
	major, minor uint32
	ino          uint64
}

// lockTable is the set of inodes that held an exclusive flock when the
// table was read. Being listed proves a lock was held; not being listed
// proves nothing, since the kernel lists only the locks of processes
// visible in the reader's PID namespace.
type lockTable map[fileKey]struct{}

// readLockTable reads the exclusive flocks from /proc/locks, once per
// scan, so that a leased data directory is known live without being
// opened. It returns nil when the table cannot be read. path replaces
// /proc/locks when not "" (tests take the table away with it).
func readLockTable(path string) lockTable {
	if path == "" {
		path = procLocksPath
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	// One read takes the usual table whole; a bigger one grows the buffer.
	var buf bytes.Buffer
	buf.Grow(64 << 10)
	if _, err := buf.ReadFrom(io.LimitReader(f, maxProcLocks+1)); err != nil || buf.Len() > maxProcLocks {
		return nil
	}
	return parseLockTable(buf.Bytes())
}

// parseLockTable parses the lines of /proc/locks, e.g.
//
//	1: FLOCK  ADVISORY  WRITE 1234 00:2f:131078 0 EOF
//	2: -> FLOCK  ADVISORY  WRITE 1240 00:2f:131078 0 EOF
//
// keeping the granted exclusive flocks (a "->" line is a waiter). The
// device is the kernel's major and minor number in hex, the inode in
// decimal. A line it does not understand is skipped.
func parseLockTable(data []byte) lockTable {
	t := lockTable{}
	for line := range bytes.Lines(data) {
		fields := bytes.Fields(line)
		if len(fields) < 6 || string(fields[1]) != "FLOCK" || string(fields[3]) != "WRITE" {
			continue
		}
		parts := bytes.Split(fields[5], []byte{':'})
		if len(parts) != 3 {
			continue
		}
		major, err1 := strconv.ParseUint(string(parts[0]), 16, 32)
		minor, err2 := strconv.ParseUint(string(parts[1]), 16, 32)
		ino, err3 := strconv.ParseUint(string(parts[2]), 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		t[fileKey{uint32(major), uint32(minor), ino}] = struct{}{}
	}
	return t
}

// held reports whether the inode ino on the device dev (a stat st_dev)
// was listed holding an exclusive flock.
func (t lockTable) held(dev, ino uint64) bool {
	if len(t) == 0 || ino == 0 {
		return false
	}
	_, ok := t[fileKey{unix.Major(dev), unix.Minor(dev), ino}]
	return ok
}
