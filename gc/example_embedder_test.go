// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/state"
)

// makeVMs lays out brood-box's vms directory: vms/<name>/ holds its
// sentinel and log, vms/<name>/data/ is go-microvm's data directory with
// a per-session image cache. "crashed" was killed mid-run, "stopped" was
// stopped cleanly, "current" is the run that is starting now.
func makeVMs() (vms, current string) {
	vms, err := os.MkdirTemp("", "bbox-vms-")
	if err != nil {
		log.Fatal(err)
	}
	records := map[string]string{
		"crashed": `{"version":1,"active":true,"name":"crashed","pid":4242,"created_at":"2025-01-01T00:00:00Z","leased":true}`,
		"stopped": `{"version":1,"active":false,"name":"stopped","created_at":"2025-01-01T00:00:00Z"}`,
		"current": `{"version":1,"active":true,"name":"current","created_at":"2025-01-01T00:00:00Z","leased":true}`,
	}
	for name, record := range records {
		files := map[string]string{
			".bbox-sentinel":                 "4242\n/usr/bin/bbox",
			"broodbox.log":                   "log\n",
			"data/" + state.FileName:         record,
			"data/rootfs-work/etc/hostname":  name + "\n",
			"data/cache/blobs/sha256/layer0": "layer\n",
		}
		for rel, content := range files {
			p := filepath.Join(vms, name, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				log.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				log.Fatal(err)
			}
		}
	}
	return vms, filepath.Join(vms, "current", "data")
}

// brood-box's whole sweep of ~/.config/broodbox/vms in one call: crashed
// and stopped VMs go with brood-box's own files, the current run is kept
// by the veto (as would be any VM whose sentinel names a live bbox).
func ExampleWithOwnedNames() {
	vms, current := makeVMs()
	defer os.RemoveAll(vms)

	report, err := gc.Collect(vms,
		gc.WithOwnedNames(".bbox-sentinel", "broodbox.log", "cache", "firmware.ref.json"),
		gc.WithStopped(0),
		gc.WithBudget(30*time.Second),
		gc.WithKeep(func(dataDir string) bool { return dataDir == current }),
	)
	if errors.Is(err, gc.ErrBusy) {
		return // another bbox is sweeping
	}
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range report.Reclaimed {
		fmt.Println("reclaimed", filepath.Base(filepath.Dir(o.Path)), o.Reason)
	}
	for _, k := range report.Kept {
		fmt.Println("kept", filepath.Base(filepath.Dir(k.Path)), k.Reason)
	}
	entries, _ := os.ReadDir(vms)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), gc.OwnPrefix) { // the collector's lock stays
			fmt.Println("left:", e.Name())
		}
	}
	// Output:
	// reclaimed crashed run-ended
	// reclaimed stopped stopped-expired
	// kept current embedder-keep
	// left: current
}
