// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// statTail is fields 3 to 52 of a real /proc/PID/stat line, with state S
// and start time (field 22) 4242.
const statTail = "S 1 1234 1234 0 -1 4194560 1000 0 0 0 5 3 0 0 20 0 1 0 4242 12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"

func TestParseStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		data  string
		want  Stat
		valid bool
	}{
		{"plain", "123 (sleep) " + statTail, Stat{123, "sleep", 'S', 4242}, true},
		{"no trailing newline", "123 (sleep) " + strings.TrimSuffix(statTail, "\n"), Stat{123, "sleep", 'S', 4242}, true},
		{"spaces in comm", "7 (a b  c) " + statTail, Stat{7, "a b  c", 'S', 4242}, true},
		{"close paren in comm", "7 (x) (y) " + statTail, Stat{7, "x) (y", 'S', 4242}, true},
		{"comm looks like fields", "7 (x) Z 1 2 3) " + statTail, Stat{7, "x) Z 1 2 3", 'S', 4242}, true},
		{"newline in comm", "7 (a\nb) " + statTail, Stat{7, "a\nb", 'S', 4242}, true},
		{"open paren in comm", "7 (((() " + statTail, Stat{7, "(((", 'S', 4242}, true},
		{"empty comm", "7 () " + statTail, Stat{7, "", 'S', 4242}, true},
		{"zombie", "7 (z) Z" + statTail[1:], Stat{7, "z", 'Z', 4242}, true},
		{"only 22 fields", "7 (s) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99", Stat{7, "s", 'S', 99}, true},

		{"empty", "", Stat{}, false},
		{"newline only", "\n", Stat{}, false},
		{"no parens", "123 sleep " + statTail, Stat{}, false},
		{"no close paren", "123 (sleep " + statTail, Stat{}, false},
		{"close before open", "123 )sleep( " + statTail, Stat{}, false},
		{"truncated after comm", "123 (sleep)", Stat{}, false},
		{"truncated after state", "123 (sleep) S", Stat{}, false},
		{"21 fields", "7 (s) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0", Stat{}, false},
		{"truncated mid-file", "123 (sleep) " + statTail[:40], Stat{}, false},
		{"no pid", "(sleep) " + statTail, Stat{}, false},
		{"pid without space", "123(sleep) " + statTail, Stat{}, false},
		{"pid not a number", "abc (sleep) " + statTail, Stat{}, false},
		{"pid zero", "0 (sleep) " + statTail, Stat{}, false},
		{"pid negative", "-5 (sleep) " + statTail, Stat{}, false},
		{"pid overflow", "99999999999999999999999 (sleep) " + statTail, Stat{}, false},
		{"no space after comm", "123 (sleep)" + statTail, Stat{}, false},
		{"state two bytes", "7 (s) SS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99", Stat{}, false},
		{"start time not a number", "7 (s) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9x9", Stat{}, false},
		{"start time negative", "7 (s) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -99", Stat{}, false},
		{"start time overflow", "7 (s) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 18446744073709551616", Stat{}, false},
		{"NUL bytes", "7 (s) S\x00 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99", Stat{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.data))
			if !tt.valid {
				if err == nil {
					t.Fatalf("ParseStat = %+v, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseStat = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestZombieState(t *testing.T) {
	t.Parallel()
	for _, s := range []byte("ZXx") {
		if !zombieState(s) {
			t.Errorf("zombieState(%q) = false", s)
		}
	}
	for _, s := range []byte("RSDTtWPIK") {
		if zombieState(s) {
			t.Errorf("zombieState(%q) = true", s)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	if data, err := os.ReadFile("/proc/self/stat"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStat(data)
		if err != nil {
			return
		}
		if st.PID <= 0 {
			t.Errorf("accepted pid %d", st.PID)
		}
		if !bytes.Contains(data, []byte("("+st.Comm+") ")) {
			t.Errorf("comm %q is not the parenthesised part of %q", st.Comm, data)
		}
		if st.State == ' ' || st.State == '\n' || st.State == ')' {
			t.Errorf("accepted state %q", st.State)
		}
	})
}

func TestParseProcArgs2(t *testing.T) {
	t.Parallel()
	argc := []byte{2, 0, 0, 0}
	tests := []struct {
		name string
		buf  []byte
		want string
		ok   bool
	}{
		{"real", append(argc, "/usr/local/bin/go-microvm-runner\x00\x00\x00go-microvm-runner\x00--x\x00HOME=/\x00"...), "/usr/local/bin/go-microvm-runner", true},
		{"path only", append(argc, "/a\x00"...), "/a", true},
		{"empty", nil, "", false},
		{"short", []byte{1, 0}, "", false},
		{"argc only", argc, "", false},
		{"no NUL", append(argc, "/usr/bin/x"...), "", false},
		{"empty path", append(argc, "\x00\x00"...), "", false},
		{"relative", append(argc, "bin/runner\x00"...), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcArgs2(tt.buf)
			if tt.ok != (err == nil) || got != tt.want {
				t.Errorf("parseProcArgs2 = %q, %v; want %q, ok %v", got, err, tt.want, tt.ok)
			}
		})
	}
}
