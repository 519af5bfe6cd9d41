// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/state"
)

// makeRoot lays out a root holding one data directory whose run ended
// without a clean stop: the run marker is set and nobody holds the lease.
func makeRoot() string {
	root, err := os.MkdirTemp("", "gc-example-")
	if err != nil {
		log.Fatal(err)
	}
	dir := filepath.Join(root, "vm1")
	if err := os.MkdirAll(filepath.Join(dir, "rootfs-work", "etc"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs-work", "etc", "hostname"), []byte("vm1\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	record := `{"version":1,"active":true,"name":"vm1","pid":4242,"pid_start_time":"0001-01-01T00:00:00Z","created_at":"2025-01-01T00:00:00Z","leased":true}`
	if err := os.WriteFile(filepath.Join(dir, state.FileName), []byte(record), 0o644); err != nil {
		log.Fatal(err)
	}
	return root
}

func ExampleOrphans() {
	root := makeRoot()
	defer os.RemoveAll(root)

	orphans, err := gc.Orphans(root)
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range orphans {
		fmt.Println(filepath.Base(o.Path), o.Reason)
	}
	// Output: vm1 run-ended
}

func ExampleCollect() {
	root := makeRoot()
	defer os.RemoveAll(root)

	report, err := gc.Collect(root)
	if errors.Is(err, gc.ErrBusy) {
		return // another collector is at work on root
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range report.Reclaimed {
		fmt.Println("reclaimed", filepath.Base(o.Path), o.Reason)
	}
	for _, e := range report.Errors {
		fmt.Println("error", e.Path, e.Err)
	}
	_, err = os.Stat(filepath.Join(root, "vm1"))
	fmt.Println("vm1 exists:", err == nil)
	// Output:
	// reclaimed vm1 run-ended
	// vm1 exists: false
}

func ExampleWithProgress() {
	root := makeRoot()
	defer os.RemoveAll(root)

	// The hook may run on several goroutines at once: count atomically.
	var classified, reclaimed atomic.Int64
	_, err := gc.Collect(root, gc.WithProgress(func(p gc.Progress) {
		switch p.Kind {
		case gc.ProgressClassified:
			classified.Add(1)
		case gc.ProgressReclaimed:
			reclaimed.Add(1)
		}
	}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d classified, %d reclaimed\n", classified.Load(), reclaimed.Load())
	// Output: 1 classified, 1 reclaimed
}
