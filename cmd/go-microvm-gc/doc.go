// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Command go-microvm-gc lists and reclaims the data directories that killed
// go-microvm VMs leave behind; it never touches a live VM's files.
//
//	go-microvm-gc list    [--root DIR]... [--json | --json-lines] [--sizes] [-q] [-v]
//	                      [--stopped --older-than AGE]
//	go-microvm-gc collect [--root DIR]... [-n] [--json] [-q] [-v] [-f] [--owned NAME]...
//	                      [--stopped --older-than AGE] [--metrics-file FILE] [--allow-any-root]
//	go-microvm-gc version | help [COMMAND] | completion SHELL | --version
//
// Roots are every --root, else $GO_MICROVM_GC_ROOT (a PATH-like list), else
// the default roots that exist. Exit codes: 0 done; 1 something was not
// reclaimed, scanned or written; 2 usage; 75 another collector holds the
// root; 130 SIGINT; 143 SIGTERM. Each command's --help says more; the
// README documents the JSON contract.
package main
