// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package stress holds the fault-injection, hostile-input, load and memory
// tests of go-microvm's orphan reclamation; it has no code outside its tests.
//
// Every test here drives real processes against real files: collectors are
// SIGKILLed at random instants, embedders and runners crash beside collectors
// running in a loop, and malformed data directories are fed to gc. The size
// of each run is set by environment knobs so CI runs a short version and
// `make stress` a full one:
//
//	STRESS_KILLS     SIGKILLs of the collector in TestKillAnywhere (default 30)
//	STRESS_DURATION  length of TestConcurrency and TestSharedRoot (default 5s)
//	STRESS_FILES     files in each of the 4 orphan trees of TestKillAnywhere (default 1000)
//	STRESS_SEED      seed of the random choices (default: the clock; printed)
package stress
