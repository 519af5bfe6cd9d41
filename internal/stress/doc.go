// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package stress holds the fault-injection, hostile-input, load and memory
// tests of orphan reclamation, with real processes, random SIGKILLs and
// malformed data directories; it has no code outside its tests. CI runs a
// short version, `make stress` a full one, sized by:
//
//	STRESS_KILLS     SIGKILLs of the collector in TestKillAnywhere, and of the
//	                 released-Run creator in TestKillCreatorAnywhere (default 30)
//	STRESS_DURATION  length of TestConcurrency and TestSharedRoot (default 5s)
//	STRESS_FILES     files in each of the 4 orphan trees of TestKillAnywhere (default
//	                 1000), a quarter of it in each clone of TestKillCreatorAnywhere
//	STRESS_SEED      seed of the random choices (default: the clock; printed)
package stress
