// SPDX-License-Identifier: Apache-2.0

// Command go-microvm-gc lists and reclaims the data directories that
// go-microvm virtual machines leave behind when their runner or their
// embedder is killed.
//
// Usage:
//
//	go-microvm-gc list    [--root DIR] [--json] [--sizes] [--stopped --older-than DUR]
//	go-microvm-gc collect [--root DIR] [--dry-run] [--json] [--stopped --older-than DUR]
//	go-microvm-gc demo    [--keep]
//	go-microvm-gc --version
//
// The default root is $XDG_CONFIG_HOME/go-microvm, else
// ~/.config/go-microvm, the released default data directory; when it does
// not exist there is nothing to do. A --root that does not exist is a usage
// error.
//
// list never changes anything. collect reclaims orphans through package gc,
// which never deletes a live VM's files, never follows a symbolic link and
// never crosses a mount point. demo builds a sandbox root with real
// processes in a temporary directory, runs list, collect and list again,
// and checks every expectation; it exits 0 only when all of them held.
//
// Exit codes: 0 done; 1 some directories could not be reclaimed, or the
// root could not be scanned; 2 usage error (bad flags, a --root that does
// not exist or is not a directory); 75 another collector holds the root
// lock.
//
// The JSON forms (--json) are a stable contract, described in the README.
package main
