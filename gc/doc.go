// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package gc finds the data directories of go-microvm VMs under a root,
// classifies each one, and reclaims those whose VM is gone.
//
// A data directory D is a candidate when it holds a go-microvm-state.json:
// root itself and directories down to two levels below it (WithDepth). The
// search never follows a symbolic link, never enters a directory named
// rootfs-work or cache at any depth (nothing inside one is ever a
// candidate), and ignores every name starting with OwnPrefix.
//
// Classification is a pure function of facts gathered by syscalls: a held
// run lease means live, a held state lock means busy, a set run marker with
// a free lease means the run ended uncleanly unless the recorded runner is
// alive with its exact identity, and for records without the marker the
// released PID rules apply, with the strongest identity evidence first
// (kernel start time, then pid_start_time, then the process's names:
// executable, comm and argv[0], kept where they disagree). A
// wall-clock rule alone never reclaims a directory whose PID a
// go-microvm-runner holds, since a stepped clock moves wall-clock start
// times. A PID is dead only when kill(pid, 0) says ESRCH in the PID
// namespace it was recorded in (absence from /proc proves nothing), or it is
// a zombie with no live thread; a PID the collector cannot judge is kept as
// ClassUnknown. A record that does not say its namespace (released
// go-microvm's) is judged from the host's, and kept while a process named
// as the runner has its PID in a nested namespace (a container's). Package runner applies the same decision (JudgeRunner,
// JudgeState). Only ClassOrphan is ever reclaimed.
//
// Scan and Orphans only look: they create no file or directory, so they
// work on a read-only filesystem.
//
// Collect holds this user's root lock (root/.go-microvm-gc-<euid>.lock) for
// its whole run; a second collector of the same user on the same root gets
// ErrBusy at once instead of waiting. Collectors of other users have their
// own lock, and never wait for each other.
//
// Collect decides each reclaim again while it holds the data directory's run
// lease and state lock, so a VM that started or changed during the sweep is
// kept.
//
// Collect removes only what go-microvm owns in a data directory
// (rootfs-work, state-*.json.tmp, console.log, vm.log, the state file and
// the state lock file); every other file is kept, and so is the directory
// unless it is then empty. Root itself is never removed.
//
// Collect is crash-safe: rootfs-work is first renamed into the collector's
// trash (or, where there is none, removed in place), the state file is
// removed last, and every run first empties the trash, so a collector
// killed at any instant leaves nothing that the next run does not reclaim.
//
// Deletion is relative to directory descriptors: it never follows a
// symbolic link, never crosses into another filesystem (a mount point is
// reported and left), and counts the allocated bytes it frees.
//
// One directory that fails never stops the sweep: its error is reported in
// Report.Errors with its path, and the others are handled.
package gc
