// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/state"
)

// makeVMs lays out brood-box's vms directory: vms/<name>/ holds its
// sentinel (the PID of the bbox that owns the session) and log, and
// vms/<name>/data/ is go-microvm's data directory. "crashed" and
// "stopped" belong to bboxes that are gone; "early" is a bbox killed
// while Run cloned the rootfs, before it saved any state; "reading" is a
// live bbox whose VM has stopped running; "current" is this bbox's run.
func makeVMs() (vms, current string) {
	vms, err := os.MkdirTemp("", "bbox-vms-")
	if err != nil {
		log.Fatal(err)
	}
	const gone = "2147483647\n/usr/bin/bbox"
	self := fmt.Sprintf("%d\n/usr/bin/bbox", os.Getpid())
	record := func(name string, active bool) string {
		return fmt.Sprintf(`{"version":1,"active":%t,"name":%q,"pid":4242,"created_at":"2025-01-01T00:00:00Z","leased":%t}`, active, name, active)
	}
	sessions := map[string]map[string]string{
		"crashed": {"data/" + state.FileName: record("crashed", true), ".bbox-sentinel": gone},
		"stopped": {"data/" + state.FileName: record("stopped", false), ".bbox-sentinel": gone},
		"early":   {".bbox-sentinel": gone},
		"reading": {"data/" + state.FileName: record("reading", true), ".bbox-sentinel": self},
		"current": {"data/" + state.FileName: record("current", true), ".bbox-sentinel": self},
	}
	for name, files := range sessions {
		files["broodbox.log"] = "log\n"
		files["data/rootfs-work/etc/hostname"] = name + "\n"
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
	return vms, "current"
}

// bboxInUse is brood-box's own check of a session directory: its
// sentinel names a live process, or cannot be read. (brood-box also
// checks that the process runs the bbox executable named on the
// sentinel's second line.)
func bboxInUse(session string) bool {
	data, err := os.ReadFile(filepath.Join(session, ".bbox-sentinel"))
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	pid, err := strconv.Atoi(first)
	return err == nil && pid > 0 && syscall.Kill(pid, 0) == nil
}

// brood-box's whole sweep of ~/.config/broodbox/vms in one call.
// go-microvm judges each VM's runner and locks; brood-box's veto judges
// its sessions, asked about a data directory (vms/<name>/data) or about a
// session left without one (vms/<name>), and keeps the current one and
// any whose bbox lives (it reads the rootfs after the VM stops).
func ExampleWithOwnedNames() {
	vms, current := makeVMs()
	defer os.RemoveAll(vms)

	report, err := gc.Collect(vms,
		gc.WithOwnedNames(".bbox-sentinel", "broodbox.log", "data", "cache", "firmware.ref.json"),
		gc.WithStopped(0),
		gc.WithBudget(30*time.Second),
		gc.WithKeep(func(dir string) bool {
			session := dir
			if filepath.Dir(dir) != vms {
				session = filepath.Dir(dir) // dir is vms/<name>/data
			}
			return filepath.Base(session) == current || bboxInUse(session)
		}),
	)
	if errors.Is(err, gc.ErrBusy) {
		return // another bbox is sweeping
	}
	if err != nil {
		log.Fatal(err)
	}
	session := func(path string) string { rel, _ := filepath.Rel(vms, path); return strings.Split(rel, "/")[0] }
	for _, o := range report.Reclaimed {
		fmt.Println("reclaimed", session(o.Path), o.Reason)
	}
	for _, k := range report.Kept {
		fmt.Println("kept", session(k.Path), k.Reason)
	}
	entries, _ := os.ReadDir(vms)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), gc.OwnPrefix) { // the collector's lock stays
			fmt.Println("left:", e.Name())
		}
	}
	// Output:
	// reclaimed crashed run-ended
	// reclaimed early leftover
	// reclaimed stopped stopped-expired
	// kept current embedder-keep
	// kept reading embedder-keep
	// left: current
	// left: reading
}
