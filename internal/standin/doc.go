// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package standin is a stand-in for the go-microvm runner, for tests without
// libkrun or KVM. It honours the released runner contract (Config as JSON in
// argv[1], root_path opened and kept open), writes only the files its
// environment names, keeps descriptor 3 when GO_MICROVM_LEASE_FD=3 and hands
// it to its child, and exits 0 on SIGTERM. Its knobs:
//
//	STANDIN_IGNORE_TERM=1   ignore SIGTERM (only SIGKILL stops it)
//	STANDIN_CHILD=1         start one child (itself) in its process group
//	STANDIN_READY=path      when ready, write "PID\n" or "PID CHILDPID\n"
//	STANDIN_WATCH=interval  re-check root_path's file sizes every interval,
//	                        appending each loss to STANDIN_REPORT=path
package standin
