// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

import (
	"encoding/json"
	"testing"
	"time"
)

// TestDecodeFast checks which files the fast decoder takes itself (those
// every writer produces) and which it leaves to encoding/json, and that
// it decodes the ones it takes exactly as encoding/json does.
func TestDecodeFast(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 23, 1, 2, 345678901, time.FixedZone("", 3600))
	full, err := json.Marshal(&State{
		Version: 1, Active: true, Name: "vm", Image: "example.com/img:latest", CPUs: 2, MemoryMB: 2048,
		PID: 4242, PIDStartTime: now, CreatedAt: now.UTC(), Leased: true,
		Runner: &Identity{StartTime: 123456, BootID: "0b0c-ffff", Executable: "/usr/libexec/go-microvm-runner", PIDNamespace: 4026531836},
	})
	if err != nil {
		t.Fatal(err)
	}
	indented, err := json.MarshalIndent(&State{Version: 1, Name: "stopped ✓", CreatedAt: now}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data string
		fast bool
	}{
		{"this package's, every field", string(full), true},
		{"released, indented", string(indented), true},
		{"empty object", `{}`, true},
		{"zero time", `{"version":1,"pid_start_time":"0001-01-01T00:00:00Z","created_at":"2026-01-02T03:04:05Z"}`, true},
		{"negative pid", `{"pid":-1}`, true},
		{"escape in a string", `{"name":"a\"b"}`, false},
		{"unicode escape", `{"name":"\u00e9"}`, false},
		{"key in another case", `{"Name":"vm"}`, false},
		{"unknown key", `{"version":1,"extra":[1,2]}`, false},
		{"duplicate key", `{"pid":1,"pid":2}`, false},
		{"duplicate runner", `{"runner":{"boot_id":"a"},"runner":{"start_time":1}}`, false},
		{"null", `{"runner":null}`, false},
		{"fraction", `{"version":1.0}`, false},
		{"exponent", `{"pid":1e3}`, false},
		{"leading zero", `{"pid":01}`, false},
		{"negative uint", `{"cpus":-1}`, false},
		{"uint32 overflow", `{"cpus":4294967296}`, false},
		{"int overflow", `{"pid":9223372036854775808}`, false},
		{"bad time", `{"created_at":"yesterday"}`, false},
		{"invalid UTF-8", "{\"name\":\"\xff\"}", false},
		{"control character", "{\"name\":\"a\tb\"}", false},
		{"literal glued to a letter", `{"active":truex}`, false},
		{"trailing data", `{} {}`, false},
		{"trailing comma", `{"pid":1,}`, false},
		{"string for a bool", `{"active":"true"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s State
			if got := decodeFast([]byte(tc.data), &s); got != tc.fast {
				t.Fatalf("decodeFast(%s) = %v, want %v", tc.data, got, tc.fast)
			}
			checkFastDecode(t, []byte(tc.data))
			fastS, fastErr := Parse([]byte(tc.data))
			var slow State
			slowErr := json.Unmarshal([]byte(tc.data), &slow)
			if (fastErr == nil) != (slowErr == nil) {
				t.Fatalf("Parse error %v, encoding/json error %v", fastErr, slowErr)
			}
			if fastErr == nil && !equalState(fastS, &slow) {
				t.Fatalf("Parse = %+v, encoding/json %+v", fastS, slow)
			}
		})
	}
}

// BenchmarkParse compares Parse (fast path) with encoding/json on a state
// file as this package writes it.
func BenchmarkParse(b *testing.B) {
	now := time.Now()
	data, err := json.Marshal(&State{Version: 1, Active: true, Name: "vm", Image: "example.com/img:latest", PID: 4242, PIDStartTime: now, CreatedAt: now, Leased: true,
		Runner: &Identity{StartTime: 123456, BootID: "0b0c-ffff", Executable: "/usr/libexec/go-microvm-runner", PIDNamespace: 4026531836}})
	if err != nil {
		b.Fatal(err)
	}
	var fast, slow time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
		fast += time.Since(start)
		start = time.Now()
		var s State
		if err := json.Unmarshal(data, &s); err != nil {
			b.Fatal(err)
		}
		slow += time.Since(start)
	}
	b.ReportMetric(float64(fast)/float64(slow), "x_json")
}
