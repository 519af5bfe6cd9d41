// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package standin is a stand-in for the go-microvm runner, for tests on
// machines without libkrun or KVM.
//
// It honours the released runner contract: the Config arrives as JSON in
// argv[1], and its root_path must name an existing directory, which it
// opens and keeps open.
//
// It writes nothing into the data directory except the files its
// environment names.
//
// It stays up until SIGTERM and then exits 0.
//
// It never closes descriptor 3 when GO_MICROVM_LEASE_FD=3 says the run
// lease is there, and hands it to its child.
//
// Its environment knobs:
//
//	STANDIN_IGNORE_TERM=1   ignore SIGTERM (so only SIGKILL stops it, and its child)
//	STANDIN_CHILD=1         start one child (itself, re-executed) in its process group
//	STANDIN_READY=path      when ready, write "PID\n" (or "PID CHILDPID\n") to path
//	STANDIN_WATCH=interval  snapshot the size of every regular file under root_path at
//	                        start, re-check every interval, and append one line per
//	                        loss or change to STANDIN_REPORT=path
package standin
