// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gofrs/flock"

	"github.com/stacklok/go-microvm/gc"
)

// promSample is one sample line of the Prometheus text format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	promName  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	promLabel = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseProm parses the Prometheus text exposition format strictly: HELP
// and TYPE comments before a family's samples, each family once, valid
// names, label values with only the format's escapes, float values, no
// duplicate series, and a final newline.
func parseProm(t *testing.T, text string) []promSample {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("metrics do not end with a newline")
	}
	typed := map[string]bool{}
	helped := map[string]bool{}
	seen := map[string]bool{}
	done := map[string]bool{} // families whose samples have ended
	current := ""
	var out []promSample
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fail := func(format string, args ...any) {
			t.Fatalf("line %d %q: %s", n, line, fmt.Sprintf(format, args...))
		}
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			f := strings.SplitN(rest, " ", 3)
			if len(f) < 3 || !promName.MatchString(f[1]) {
				fail("bad comment")
			}
			switch f[0] {
			case "HELP":
				if helped[f[1]] {
					fail("second HELP")
				}
				helped[f[1]] = true
			case "TYPE":
				if typed[f[1]] || seen[f[1]] {
					fail("TYPE twice or after samples")
				}
				if f[2] != "gauge" && f[2] != "counter" {
					fail("type %q", f[2])
				}
				typed[f[1]] = true
			}
			if current != f[1] && current != "" {
				done[current] = true
			}
			current = f[1]
			continue
		}
		i := strings.IndexAny(line, "{ ")
		if i <= 0 {
			fail("no metric name")
		}
		s := promSample{name: line[:i], labels: map[string]string{}}
		if !promName.MatchString(s.name) || !typed[s.name] || done[s.name] {
			fail("name not valid, not typed, or its family is split")
		}
		if s.name != current && current != "" {
			done[current] = true
		}
		current = s.name
		rest := line[i:]
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				eq := strings.Index(rest, `="`)
				if eq <= 0 || !promLabel.MatchString(rest[:eq]) {
					fail("bad label name")
				}
				key := rest[:eq]
				rest = rest[eq+2:]
				var val strings.Builder
				for {
					if rest == "" {
						fail("unterminated label value")
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\\' {
						if rest == "" {
							fail("dangling backslash")
						}
						switch rest[0] {
						case '\\':
							val.WriteByte('\\')
						case '"':
							val.WriteByte('"')
						case 'n':
							val.WriteByte('\n')
						default:
							fail("bad escape")
						}
						rest = rest[1:]
						continue
					}
					if c == '\n' {
						fail("raw newline")
					}
					val.WriteByte(c)
				}
				if _, dup := s.labels[key]; dup {
					fail("label twice")
				}
				s.labels[key] = val.String()
				rest = strings.TrimPrefix(rest, ",")
			}
			rest = rest[1:]
		}
		if !strings.HasPrefix(rest, " ") {
			fail("no space before the value")
		}
		v, err := strconv.ParseFloat(rest[1:], 64)
		if err != nil {
			fail("value: %v", err)
		}
		s.value = v
		key := s.name + fmt.Sprint(s.labels)
		if seen[key] {
			fail("duplicate series")
		}
		seen[key], seen[s.name] = true, true
		out = append(out, s)
	}
	return out
}

func findSample(samples []promSample, name string, labels map[string]string) (float64, bool) {
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for k, v := range labels {
			if s.labels[k] != v {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

// TestMetricsFile: collect --metrics-file writes the Prometheus text
// format atomically, with the outcome per root, and keeps the last
// success timestamp when a later run does not succeed.
func TestMetricsFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A root whose name needs the label escapes.
	root := filepath.Join(dir, `ro"ot\x`)
	makeOrphan(t, filepath.Join(root, "a"), 5)
	makeOrphan(t, filepath.Join(root, "b"), 5)
	if err := os.WriteFile(filepath.Join(root, "c-stopped"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	prom := filepath.Join(dir, "textfile", "go-microvm-gc.prom")
	if err := os.Mkdir(filepath.Dir(prom), 0o755); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runGC(t, gcCommand(t, "collect", "-q", "--root", root, "--metrics-file", prom))
	if code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("collect -q: exit %d\n%s%s", code, stdout, stderr)
	}
	data, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("metrics:\n%s", data)
	samples := parseProm(t, string(data))
	rl := map[string]string{"root": root}
	for name, want := range map[string]float64{
		"go_microvm_gc_reclaimed_dirs": 2,
		"go_microvm_gc_errors":         0,
		"go_microvm_gc_busy":           0,
	} {
		if v, ok := findSample(samples, name, rl); !ok || v != want {
			t.Errorf("%s = %v (found %v), want %v", name, v, ok, want)
		}
	}
	for _, name := range []string{"go_microvm_gc_freed_bytes", "go_microvm_gc_last_success_timestamp_seconds", "go_microvm_gc_duration_seconds"} {
		if v, ok := findSample(samples, name, rl); !ok || v <= 0 {
			t.Errorf("%s = %v (found %v), want > 0", name, v, ok)
		}
	}
	for _, cl := range classOrder {
		if _, ok := findSample(samples, "go_microvm_gc_kept_dirs", map[string]string{"root": root, "class": string(cl)}); !ok {
			t.Errorf("no kept_dirs sample for class %s", cl)
		}
	}
	success, _ := findSample(samples, "go_microvm_gc_last_success_timestamp_seconds", rl)
	entries, _ := os.ReadDir(filepath.Dir(prom))
	if len(entries) != 1 {
		t.Errorf("the textfile directory holds %d entries, want only the .prom file", len(entries))
	}

	// A busy run: busy is 1, the last success is carried over.
	fl := flock.New(filepath.Join(root, gc.LockName()))
	if ok, err := fl.TryLock(); !ok || err != nil {
		t.Fatalf("take root lock: %v %v", ok, err)
	}
	defer fl.Unlock()
	code, _, _ = runGC(t, gcCommand(t, "collect", "--root", root, "--metrics-file", prom))
	if code != exitBusy {
		t.Fatalf("busy collect: exit %d, want %d", code, exitBusy)
	}
	data, _ = os.ReadFile(prom)
	samples = parseProm(t, string(data))
	if v, _ := findSample(samples, "go_microvm_gc_busy", rl); v != 1 {
		t.Errorf("busy = %v, want 1", v)
	}
	if v, ok := findSample(samples, "go_microvm_gc_last_success_timestamp_seconds", rl); !ok || v != success {
		t.Errorf("last success = %v (found %v), want the earlier %v", v, ok, success)
	}
}
