// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"

	"github.com/stacklok/go-microvm/state"
)

// A writer loads, modifies and saves under the state lock.
func ExampleManager_LoadAndLock() {
	dataDir, err := os.MkdirTemp("", "vm-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)

	ls, err := state.NewManager(dataDir).LoadAndLock(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	defer ls.Release()
	ls.Name, ls.Active = "vm1", true
	if err := ls.Save(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(ls.Name, ls.Active, ls.Version)
	// Output: vm1 true 1
}

// The creator takes the run lease before it creates anything large in the
// data directory and hands it to the runner, which then holds it for life.
func ExampleAcquireLease() {
	dataDir := "/var/lib/example/vm1"
	lease, err := state.AcquireLease(context.Background(), dataDir)
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command("go-microvm-runner")
	cmd.ExtraFiles = []*os.File{lease.File()} // fd 3 in the runner
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	// Closes only our copy: the runner keeps the lease.
	lease.Close()
}

// A collector asks whether a run is alive without writing anything.
func ExampleProbeLease() {
	dataDir, err := os.MkdirTemp("", "vm-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)

	lease, err := state.TryLease(dataDir)
	if err != nil {
		log.Fatal(err)
	}
	held, _ := state.ProbeLease(dataDir)
	fmt.Println("while leased:", held)
	lease.Close()
	held, _ = state.ProbeLease(dataDir)
	fmt.Println("after close:", held)
	// Output:
	// while leased: true
	// after close: false
}
