// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Command go-microvm-runner is the stand-in runner used by the tests: it
// carries the released runner's name and honours its contract (config JSON
// in argv[1]) without booting a VM. See package internal/standin for what
// it does and its environment knobs.
package main

import (
	"os"

	"github.com/stacklok/go-microvm/internal/standin"
)

func main() { os.Exit(standin.Main(os.Args)) }
