// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, never accepts a version newer
// than it understands, and that what it accepts survives a save and a
// reload unchanged. The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		if s.Version > CurrentVersion {
			t.Fatalf("accepted version %d", s.Version)
		}
		out, err := json.Marshal(s)
		if err != nil {
			// Only times that RFC 3339 cannot hold fail to encode, and
			// Parse only accepts RFC 3339 times.
			t.Fatalf("re-marshal of an accepted state: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		if !equalState(s, again) {
			t.Fatalf("round trip changed the state:\n%+v\n%+v", s, again)
		}
	})
}

// equalState compares states, times by instant and offset: a parsed
// location is a fresh value each time, so == on time.Time cannot be used.
func equalState(a, b *State) bool {
	if !sameTime(a.PIDStartTime, b.PIDStartTime) || !sameTime(a.CreatedAt, b.CreatedAt) {
		return false
	}
	if (a.Runner == nil) != (b.Runner == nil) || (a.Runner != nil && *a.Runner != *b.Runner) {
		return false
	}
	ac, bc := *a, *b
	ac.PIDStartTime, ac.CreatedAt, ac.Runner = time.Time{}, time.Time{}, nil
	bc.PIDStartTime, bc.CreatedAt, bc.Runner = time.Time{}, time.Time{}, nil
	return ac == bc
}

func sameTime(x, y time.Time) bool {
	_, ox := x.Zone()
	_, oy := y.Zone()
	return x.Equal(y) && ox == oy
}
