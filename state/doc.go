// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package state holds the persisted record of one go-microvm data directory
// and the two locks that guard it.
//
// The state file D/go-microvm-state.json is the released go-microvm format:
// released readers can read every file this package writes, and this package
// reads every file released writers produce.
//
// Reads never follow a symlink, never open a device, FIFO or socket (the
// type is looked at first), and never read more than MaxFileSize+1 bytes. A state file that is not a regular file, is over
// the cap, is not a JSON object, or has a version newer than CurrentVersion
// is rejected at once with an error naming the path and matching
// ErrNotRegular, ErrTooLarge, ErrCorrupt or ErrNewerVersion under errors.Is.
// Unknown JSON fields are ignored.
//
// Saves are atomic and durable: the new contents are written to a temporary
// file in the data directory, flushed to disk, renamed over the state file,
// and the directory is flushed too. A reader sees the old file or the new
// one, never a mix; a failed save leaves no temporary file behind. A save
// always writes version 1.
//
// The state lock is an exclusive flock on D/go-microvm-state.lock, held only
// while a writer loads, modifies and saves: held means busy, never alive.
// The lock file's type is looked at before it is opened: a symlink, device,
// socket or directory under its name is refused with an error naming it
// and matching ErrNotRegular, and is never opened; a FIFO is opened without
// waiting, never read, and locked like a file, as released writers lock it.
//
// The run lease is an exclusive flock on the data directory D itself, held
// for the whole life of a run: held means alive. It belongs to an open file
// description, not to a process, so a runner that inherits the descriptor
// keeps it after its creator exits, and the kernel drops it when the last
// process holding a copy ends, however it ends.
//
// Every acquisition, of the state lock or of the lease, opens the path
// without following a symlink, takes the flock, and then checks that the path
// still names the inode it locked (device and inode number). When it does not
// (the previous holder removed or replaced the file or directory while this
// caller waited), the acquisition lets go and starts over, so a waiter never
// proceeds holding a lock on a dead inode.
//
// ProbeLease tells whether the lease is held right now without creating
// anything, so it works on a read-only filesystem.
//
// The collector (package gc) does all of this through open descriptors of
// data directories, resolving no path again, with the module's internal
// datadir package; the path-based functions here are built on the same
// code, so each rule has one implementation. The collector's lock never
// creates a lock file in a directory whose state file is gone, and removes
// one it created when the state file turns out gone.
//
// # Additive fields
//
// Two fields extend the released format. Released readers ignore them;
// released writers drop them when they save; both are safe:
//
//   - "leased" (bool) is the run marker: the run recorded in the file is
//     covered by a run lease on the data directory. Marker set and lease free
//     means the run ended without a clean stop, whatever killed it, including
//     a creator that died before any runner existed. A clean stop clears it.
//     A released writer that saves the file drops the marker, which sends a
//     collector back to the released PID rules for that file: no evidence is
//     invented, only the strongest kind is lost.
//   - "runner" (object) is the exact identity of the runner process:
//     "start_time", the kernel's start time of the process (Linux: field 22
//     of /proc/PID/stat in clock ticks since boot; macOS: microseconds since
//     the Unix epoch), "boot_id", the boot the process ran in, and
//     "executable", the absolute path of the runner executable, and
//     "pid_namespace", the inode of the Linux PID namespace the PID belongs
//     to (a collector in another namespace leaves the PID unjudged). It
//     pins the recorded PID to one process across PID reuse, reboots and
//     PID namespaces. A released
//     writer that drops it leaves "pid" and "pid_start_time", which this
//     project keeps writing for exactly that case.
//
// Neither field changes "version", which stays 1 so that released readers
// keep reading the file.
//
// # Released API
//
// The exported API of released go-microvm's state package is kept exactly
// (this package only adds to it), and so are the words of its errors that
// callers match ("parse state file", "timeout"). On platforms without Unix
// descriptors (Windows, js/wasm, AIX) the package builds as released does:
// Manager, LockedState and the reads work there, the state lock is
// github.com/gofrs/flock's as released, and the run lease, Dir and the
// probes, which only the Unix collector uses, are absent.
package state
