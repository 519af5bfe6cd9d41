// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// releasedState is the state schema as released go-microvm has it: what a
// released reader decodes our files into, and what a released writer saves.
type releasedState struct {
	Version      int       `json:"version"`
	Active       bool      `json:"active"`
	Name         string    `json:"name"`
	Image        string    `json:"image"`
	CPUs         uint32    `json:"cpus"`
	MemoryMB     uint32    `json:"memory_mb"`
	PID          int       `json:"pid,omitempty"`
	PIDStartTime time.Time `json:"pid_start_time"`
	CreatedAt    time.Time `json:"created_at"`
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestReadReleasedFormat(t *testing.T) {
	t.Parallel()
	created := "2025-03-04T10:11:12.123456789Z"
	started := "2025-03-04T10:11:13.5+01:00"
	tests := []struct {
		name string
		file string
		want releasedState
	}{
		{
			name: "running",
			file: `{
  "version": 1,
  "active": true,
  "name": "vm1",
  "image": "alpine:3.20",
  "cpus": 2,
  "memory_mb": 1024,
  "pid": 4242,
  "pid_start_time": "` + started + `",
  "created_at": "` + created + `"
}`,
			want: releasedState{Version: 1, Active: true, Name: "vm1", Image: "alpine:3.20", CPUs: 2, MemoryMB: 1024, PID: 4242,
				PIDStartTime: mustTime(t, started), CreatedAt: mustTime(t, created)},
		},
		{
			name: "stopped, zero pid_start_time, no pid",
			file: `{"version":1,"active":false,"name":"vm1","image":"alpine","cpus":1,"memory_mb":512,` +
				`"pid_start_time":"0001-01-01T00:00:00Z","created_at":"` + created + `"}`,
			want: releasedState{Version: 1, Name: "vm1", Image: "alpine", CPUs: 1, MemoryMB: 512, CreatedAt: mustTime(t, created)},
		},
		{
			name: "older writer without pid_start_time",
			file: `{"version":1,"active":true,"name":"old","image":"img","cpus":4,"memory_mb":2048,"pid":77,"created_at":"` + created + `"}`,
			want: releasedState{Version: 1, Active: true, Name: "old", Image: "img", CPUs: 4, MemoryMB: 2048, PID: 77, CreatedAt: mustTime(t, created)},
		},
		{
			name: "unknown fields from a newer writer",
			file: `{"version":1,"active":true,"name":"n","image":"i","cpus":1,"memory_mb":1,"pid":9,` +
				`"pid_start_time":"0001-01-01T00:00:00Z","created_at":"` + created + `",` +
				`"future":{"nested":[1,2,{"x":null}]},"flag":true}`,
			want: releasedState{Version: 1, Active: true, Name: "n", Image: "i", CPUs: 1, MemoryMB: 1, PID: 9, CreatedAt: mustTime(t, created)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := NewManager(dir).Load()
			if err != nil {
				t.Fatal(err)
			}
			got := releasedState{s.Version, s.Active, s.Name, s.Image, s.CPUs, s.MemoryMB, s.PID, s.PIDStartTime, s.CreatedAt}
			if !got.PIDStartTime.Equal(tt.want.PIDStartTime) || !got.CreatedAt.Equal(tt.want.CreatedAt) {
				t.Errorf("times = %v, %v; want %v, %v", got.PIDStartTime, got.CreatedAt, tt.want.PIDStartTime, tt.want.CreatedAt)
			}
			got.PIDStartTime, got.CreatedAt = tt.want.PIDStartTime, tt.want.CreatedAt
			if got != tt.want {
				t.Errorf("Load = %+v, want %+v", got, tt.want)
			}
			if s.Leased || s.Runner != nil {
				t.Errorf("released file loaded with additive fields set: leased=%v runner=%+v", s.Leased, s.Runner)
			}
		})
	}
}

func TestSavedFileReadsAsReleased(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ls, err := NewManager(dir).LoadAndLock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Release()
	created := mustTime(t, "2025-06-01T08:00:00Z")
	ls.Version = 0
	ls.Active, ls.Name, ls.Image, ls.CPUs, ls.MemoryMB, ls.CreatedAt = true, "vm", "img", 2, 256, created
	ls.Leased = true
	ls.Runner = &Identity{StartTime: 123456, BootID: "b00t", Executable: "/usr/bin/go-microvm-runner"}
	if err := ls.Save(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}

	// A released reader: only the released fields, unknown ones ignored.
	var rel releasedState
	if err := json.Unmarshal(data, &rel); err != nil {
		t.Fatalf("released reader cannot decode our file: %v\n%s", err, data)
	}
	want := releasedState{Version: 1, Active: true, Name: "vm", Image: "img", CPUs: 2, MemoryMB: 256, CreatedAt: created}
	if rel != want {
		t.Errorf("released reader got %+v, want %+v", rel, want)
	}

	// The keys released writers write: pid omitted when 0, the zero
	// pid_start_time written out.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["pid"]; ok {
		t.Errorf("pid written although 0: %s", data)
	}
	if got := string(raw["pid_start_time"]); got != `"0001-01-01T00:00:00Z"` {
		t.Errorf("pid_start_time = %s, want the zero time as released writers write it", got)
	}
	if got := string(raw["version"]); got != "1" {
		t.Errorf("version = %s, want 1", got)
	}

	// A released writer saving the file drops the additive fields; the
	// result must read back as a plain PID-rules file.
	relData, err := json.Marshal(rel)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(relData)
	if err != nil {
		t.Fatal(err)
	}
	if s.Leased || s.Runner != nil || !s.Active {
		t.Errorf("after a released writer's save: leased=%v runner=%+v active=%v", s.Leased, s.Runner, s.Active)
	}
}

func TestAdditiveFieldsRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := NewManager(dir)
	ls, err := m.LoadAndLock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ls.Active, ls.PID = true, 4321
	ls.PIDStartTime = mustTime(t, "2025-06-01T08:00:01.25Z")
	ls.Leased = true
	ls.Runner = &Identity{StartTime: 98765, BootID: "3f1c-boot", Executable: "/opt/bin/go-microvm-runner"}
	if err := ls.Save(); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := m.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !got.Leased || got.Runner == nil || *got.Runner != *ls.Runner {
		t.Errorf("additive fields = leased %v runner %+v, want leased true runner %+v", got.Leased, got.Runner, *ls.Runner)
	}
	if got.PID != 4321 || !got.PIDStartTime.Equal(ls.PIDStartTime) {
		t.Errorf("pid = %d %v, want 4321 %v", got.PID, got.PIDStartTime, ls.PIDStartTime)
	}
}

func TestLoadMissing(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "absent")} {
		s, err := NewManager(dir).Load()
		if err != nil {
			t.Fatalf("Load(%s): %v", dir, err)
		}
		if s.Version != CurrentVersion || s.Active || s.PID != 0 {
			t.Errorf("Load(%s) = %+v, want a fresh default state", dir, s)
		}
		if _, err := ReadFile(filepath.Join(dir, FileName)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadFile of a missing file: %v, want fs.ErrNotExist", err)
		}
	}
}

func TestReadHostile(t *testing.T) {
	t.Parallel()
	valid := `{"version":1,"active":true,"name":"x","image":"y","cpus":1,"memory_mb":1,"pid":1,"created_at":"2025-01-01T00:00:00Z"}`
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  error
	}{
		{"fifo", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular},
		{"symlink to a valid state file", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "real.json")
			if err := os.WriteFile(target, []byte(valid), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular},
		{"dangling symlink", func(t *testing.T, path string) {
			if err := os.Symlink("/nonexistent/go-microvm-state.json", path); err != nil {
				t.Fatal(err)
			}
		}, ErrNotRegular},
		{"2 GiB sparse file", func(t *testing.T, path string) {
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(2 << 30); err != nil {
				t.Fatal(err)
			}
		}, ErrTooLarge},
		{"one byte over the cap", func(t *testing.T, path string) {
			write(t, path, valid+strings.Repeat(" ", MaxFileSize+1-len(valid)))
		}, ErrTooLarge},
		{"bad JSON", func(t *testing.T, path string) { write(t, path, `{"version":1,"active":tru`) }, ErrCorrupt},
		{"empty", func(t *testing.T, path string) { write(t, path, "") }, ErrCorrupt},
		{"null", func(t *testing.T, path string) { write(t, path, "null") }, ErrCorrupt},
		{"array", func(t *testing.T, path string) { write(t, path, "[1]") }, ErrCorrupt},
		{"wrong type", func(t *testing.T, path string) { write(t, path, `{"version":1,"pid":"12"}`) }, ErrCorrupt},
		{"trailing garbage", func(t *testing.T, path string) { write(t, path, valid+"x") }, ErrCorrupt},
		{"version 2", func(t *testing.T, path string) {
			write(t, path, strings.Replace(valid, `"version":1`, `"version":2`, 1))
		}, ErrNewerVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			tt.setup(t, path)
			_, err := within(t, "ReadFile", func() (*State, error) { return ReadFile(path) })
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadFile: %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			_, err = within(t, "Load", NewManager(dir).Load)
			if !errors.Is(err, tt.want) {
				t.Errorf("Load: %v, want %v", err, tt.want)
			}
			// Locking must not leave the lock held when the file is bad.
			_, err = within(t, "TryLoadAndLock", NewManager(dir).TryLoadAndLock)
			if !errors.Is(err, tt.want) {
				t.Errorf("TryLoadAndLock: %v, want %v", err, tt.want)
			}
			if held, err := probeLock(dir); err != nil || held {
				t.Errorf("after a failed load the lock is held=%v (err %v), want released", held, err)
			}
		})
	}
}

func TestReadAtCap(t *testing.T) {
	t.Parallel()
	valid := `{"version":1,"name":"cap"}`
	path := filepath.Join(t.TempDir(), FileName)
	write(t, path, valid+strings.Repeat("\n", MaxFileSize-len(valid)))
	s, err := ReadFile(path)
	if err != nil {
		t.Fatalf("a file of exactly MaxFileSize bytes: %v", err)
	}
	if s.Name != "cap" {
		t.Errorf("Name = %q", s.Name)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    error
		version int
	}{
		{`{}`, nil, 0},
		{` {"version":1} `, nil, 1},
		{`{"version":0}`, nil, 0},
		{`{"version":-1}`, ErrCorrupt, 0},
		{`{"version":2}`, ErrNewerVersion, 0},
		{`{"version":1e9}`, ErrCorrupt, 0},
		{`{"version":1,"runner":null}`, nil, 1},
		{`{"version":1,"runner":{"start_time":-1}}`, ErrCorrupt, 0},
		{`{"version":1,"pid_start_time":"yesterday"}`, ErrCorrupt, 0},
		{`"{}"`, ErrCorrupt, 0},
		{string(bytes.Repeat([]byte(" "), MaxFileSize+1)), ErrTooLarge, 0},
	}
	for _, tt := range tests {
		s, err := Parse([]byte(tt.in))
		name := tt.in
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("Parse(%q): %v, want %v", name, err, tt.want)
			continue
		}
		if err == nil && s.Version != tt.version {
			t.Errorf("Parse(%q).Version = %d, want %d", name, s.Version, tt.version)
		}
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Released Manager is comparable, so a caller may compare Managers or key a
// map by them; ours must stay so (this does not compile otherwise).
func TestManagerComparable(t *testing.T) {
	t.Parallel()
	a, a2 := *NewManager("/a"), *NewManager("/a")
	if a == *NewManager("/b") || a != a2 {
		t.Fatal("Managers compare by their data directory")
	}
}
