// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner_test

import (
	"context"
	"log"
	"path/filepath"

	"github.com/stacklok/go-microvm/runner"
)

// Claim the data directory, clone the rootfs, spawn the runner; the run
// lease protects the directory from collectors throughout.
func ExampleNewClaim() {
	ctx := context.Background()
	dataDir := "/var/lib/myapp/vms/web"
	claim, err := runner.NewClaim(ctx, dataDir, runner.WithName("web"))
	if err != nil {
		log.Fatal(err)
	}
	defer claim.Abort() // no-op once spawned

	// ... clone the image rootfs into dataDir/rootfs-work ...

	proc, err := claim.Spawn(ctx, runner.Config{
		RootPath: filepath.Join(dataDir, "rootfs-work"),
		NumVCPUs: 2,
		RAMMiB:   1024,
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("runner pid %d", proc.PID())
}

// A restarted embedder stops a VM it started before.
func ExampleAttach() {
	proc, err := runner.Attach("/var/lib/myapp/vms/web")
	if err != nil {
		log.Fatal(err) // errors.Is(err, runner.ErrNotRunning) when it is gone
	}
	if err := proc.Stop(context.Background()); err != nil {
		log.Fatal(err)
	}
}
