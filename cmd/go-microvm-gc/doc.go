// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Command go-microvm-gc lists and reclaims the data directories that
// go-microvm virtual machines leave behind when their runner or their
// embedder is killed.
//
// Usage:
//
//	go-microvm-gc list    [--root DIR]... [--json] [--sizes] [-q] [-v] [--stopped --older-than AGE]
//	go-microvm-gc collect [--root DIR]... [-n] [--json] [-q] [-v] [-f] [--stopped --older-than AGE]
//	                      [--metrics-file FILE] [--allow-any-root]
//	go-microvm-gc demo    [--keep] [-v]
//	go-microvm-gc help [COMMAND]
//	go-microvm-gc completion bash|zsh|fish|powershell
//	go-microvm-gc --version
//
// The roots are every --root, else the list in GO_MICROVM_GC_ROOT
// (separated like PATH), else the default roots that exist:
// $GO_MICROVM_DATA_DIR and ~/.config/go-microvm (released go-microvm's
// data directory); an embedder's directory is never a default root. When
// none exists there is nothing to do. A root
// named by hand that does not exist is a usage error, and collect refuses
// /, the home directory of any user (from /etc/passwd and $HOME), /home
// and /Users, and any directory above one of them, unless
// --allow-any-root is given; a directory below a home directory is fine.
//
// list never changes anything. collect reclaims orphans through package gc,
// which never deletes a live VM's files, never follows a symbolic link and
// never crosses a mount point. demo builds a sandbox root with real
// processes in a temporary directory, runs list, collect and list again,
// and checks every expectation; it builds its helper processes from source,
// so the command itself has no hidden modes.
//
// Exit codes: 0 done; 1 some directories could not be reclaimed, a root
// could not be scanned, or the output could not be written; 2 usage error;
// 75 another collector holds the root lock; 130 interrupted (SIGINT); 143
// terminated (SIGTERM).
//
// The JSON forms (--json, --json-lines) are a stable contract, described
// in the README. They are exact: an object with a "path" whose bytes are
// not valid UTF-8 (which a JSON string cannot hold) also has "path_bytes",
// those bytes in base64; the exact path is path_bytes when present, else
// path.
package main
