// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"github.com/stacklok/go-microvm/internal/datadir"
	"github.com/stacklok/go-microvm/internal/judge"
	"github.com/stacklok/go-microvm/state"
)

// probeMode says which probes observeAt makes.
type probeMode int

const (
	// probeAll probes the lease of every candidate: the true class.
	probeAll probeMode = iota
	// probeOrphans probes only what can change a would-be orphan's
	// verdict; the others are classified from their state alone.
	probeOrphans
)

// observeAt gathers the facts about d, whose state file the walk opened as
// sf (closed here), through the walk's own descriptors, changing nothing.
// The state is read before the probes: a creator takes the lease before it
// sets the marker, so a marker read first and a lease found free afterwards
// cannot be a run just starting.
func observeAt(ob *judge.Observer, d datadir.Dir, sf datadir.StateFile, p judge.Policy, mode probeMode) (f judge.Facts) {
	f, _ = readFacts(ob, sf.Read)
	_ = sf.Close()
	if f.StateErr != nil && mode == probeOrphans {
		// Unreadable whatever the locks say.
		return f
	}

	marked := f.State != nil && f.State.Leased
	if mode == probeAll || marked {
		if f.LeaseHeld, f.LeaseErr = d.ProbeLease(); f.LeaseHeld || f.LeaseErr != nil {
			return f
		}
	}
	ob.LookupProcess(&f)
	if judge.Classify(f, p).Class != ClassOrphan {
		return f
	}
	if mode == probeOrphans && !marked {
		if f.LeaseHeld, f.LeaseErr = d.ProbeLease(); f.LeaseHeld || f.LeaseErr != nil {
			return f
		}
	}
	// A held state lock turns only an orphan into busy, so only a would-be
	// orphan's lock is probed; a kept one is reported with its own verdict.
	f.LockHeld, f.LockErr = d.ProbeLock()
	return f
}

// readFacts reads the state through read; the runner is not looked up.
func readFacts(ob *judge.Observer, read func(datadir.Parser) (datadir.FileInfo, error)) (judge.Facts, error) {
	var s *state.State
	fi, err := read(func(data []byte) (err error) {
		s, err = state.Parse(data)
		return err
	})
	f := ob.Bare()
	f.State, f.StateErr, f.StateModTime = s, err, fi.ModTime
	return f, err
}
