// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stacklok/go-microvm/state"
)

// brood-box keeps one directory per session under ~/.config/broodbox/vms:
// vms/<name>/ holds its sentinel (the bbox PID, then its executable) and
// its log, and vms/<name>/data is go-microvm's data directory, created by
// brood-box before released microvm.Run writes any state there.
const (
	bboxSentinel    = ".bbox-sentinel"
	bboxSentinelCap = 4096
	bboxDeadPID     = 1<<31 - 1 // beyond any pid_max: never alive
)

// bboxOwned are brood-box's entries: its sentinel and log beside the data
// directory, the data directory's own name (a session killed before Run
// saved state leaves it with no state file), and the per-session image
// cache and firmware reference inside it.
var bboxOwned = []string{bboxSentinel, "broodbox.log", "data", "cache", "firmware.ref.json"}

// bboxSweep is brood-box's whole sweep of vms, its current session named
// current, as one Collect: go-microvm judges the runners and the locks,
// brood-box's veto judges its own sessions.
func bboxSweep(vms, current string) (*Report, error) {
	return Collect(vms, WithOwnedNames(bboxOwned...), WithStopped(0), WithKeep(bboxKeep(vms, current)))
}

// bboxKeep is brood-box's veto. It is asked about a data directory
// (vms/<name>/data) or a session left without one (vms/<name>), and keeps
// the session when it is the current one, when its sentinel cannot be
// read, or when the sentinel names a live bbox. A session directory with
// no sentinel at all is not brood-box's to remove.
func bboxKeep(vms, current string) func(string) bool {
	return func(dir string) bool {
		session, leftover := dir, true
		if filepath.Dir(dir) != vms {
			session, leftover = filepath.Dir(dir), false
		}
		if filepath.Base(session) == current {
			return true
		}
		data, err := readSentinel(filepath.Join(session, bboxSentinel))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return leftover
		case err != nil:
			return true
		}
		pid, exe, ok := parseSentinel(data)
		return ok && bboxAlive(pid, exe)
	}
}

// readSentinel reads a sentinel, refusing one over brood-box's cap.
func readSentinel(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > bboxSentinelCap {
		return nil, fmt.Errorf("sentinel %s: %d bytes, over %d", path, fi.Size(), bboxSentinelCap)
	}
	return io.ReadAll(io.LimitReader(f, bboxSentinelCap))
}

// parseSentinel reads "PID" or "PID\nEXECUTABLE"; ok is false when the
// PID is not a positive integer.
func parseSentinel(data []byte) (pid int, exe string, ok bool) {
	first, rest, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, "", false
	}
	return pid, strings.TrimSpace(rest), true
}

// bboxAlive reports whether pid is a live bbox: it exists and, when the
// sentinel names an executable and /proc can tell, runs that executable.
func bboxAlive(pid int, exe string) bool {
	p, err := os.FindProcess(pid)
	if err != nil || p.Signal(syscall.Signal(0)) != nil {
		return false
	}
	if exe == "" || runtime.GOOS != "linux" {
		return true
	}
	got, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && filepath.Clean(strings.TrimSuffix(got, " (deleted)")) == filepath.Clean(exe)
}

// bboxSession lays out what a bbox session leaves, as brood-box writes it.
type bboxSession struct {
	t   *testing.T
	dir string
}

func (s bboxSession) sentinel(content string) bboxSession {
	s.t.Helper()
	writeFile(s.t, filepath.Join(s.dir, bboxSentinel), content)
	return s
}

func (s bboxSession) log() bboxSession {
	s.t.Helper()
	writeFile(s.t, filepath.Join(s.dir, "broodbox.log"), "session log\n")
	return s
}

// record saves the runner's state the way brood-box's released go-microvm
// does, beside a rootfs clone.
func (s bboxSession) record(active bool, pid int) bboxSession {
	s.t.Helper()
	data := filepath.Join(s.dir, "data")
	writeFile(s.t, filepath.Join(data, rootfsWorkName, "etc", "hostname"), "guest\n")
	ls, err := state.NewManager(data).LoadAndLock(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	defer ls.Release()
	ls.Active, ls.PID = active, pid
	if err := ls.Save(); err != nil {
		s.t.Fatal(err)
	}
	return s
}

// TestBroodBoxCleanupScenarios runs every scenario of brood-box's own
// cleanup tests (CleanupStaleVMDirs) against one Collect with brood-box's
// owned names and its veto, plus the sessions its sweep must also clean:
// a bbox killed before Run saved any state. Each scenario lays out
// sessions, sweeps, and checks which sessions are gone and that the
// others are untouched.
func TestBroodBoxCleanupScenarios(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A live bbox, and a bbox that was SIGKILLed: real processes.
	live := startHelper(t, "sleep", "", "ready")
	killed := startHelper(t, "sleep", "", "ready")
	killed.Kill()
	liveBbox := fmt.Sprintf("%d\n%s", live.Pid(), exe)
	deadBbox := fmt.Sprintf("%d\n%s", killed.Pid(), exe)
	dead := strconv.Itoa(bboxDeadPID)

	at := func(name string) func(t *testing.T, vms string) bboxSession {
		return func(t *testing.T, vms string) bboxSession {
			mkdir(t, filepath.Join(vms, name))
			return bboxSession{t: t, dir: filepath.Join(vms, name)}
		}
	}
	cases := []struct {
		name    string
		current string
		lay     func(t *testing.T, vms string)
		gone    []string
		kept    []string
	}{
		{name: "runner dead, no sentinel (--log-file)", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).record(true, bboxDeadPID)
		}, gone: []string{"vm"}},
		{name: "bbox dead, no state", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel(deadBbox).log()
		}, gone: []string{"vm"}},
		{name: "bbox dead (PID only), stopped", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).record(false, bboxDeadPID).sentinel(dead)
		}, gone: []string{"vm"}},
		{name: "bbox alive, no state", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel(liveBbox)
		}, kept: []string{"vm"}},
		{name: "stopped, no sentinel", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).record(false, bboxDeadPID)
		}, gone: []string{"vm"}},
		{name: "empty directory", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms)
		}, kept: []string{"vm"}},
		{name: "session directory absent", lay: func(*testing.T, string) {}},
		{name: "state file over brood-box's cap", lay: func(t *testing.T, vms string) {
			writeFile(t, filepath.Join(vms, "vm", "data", state.FileName), strings.Repeat("1", 4097))
		}, kept: []string{"vm"}},
		{name: "current session", current: "vm", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).record(true, bboxDeadPID)
		}, kept: []string{"vm"}},
		{name: "runner dead, bbox killed", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).record(true, bboxDeadPID).sentinel(deadBbox).log()
		}, gone: []string{"vm"}},
		{name: "runner PID reused by another program", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).record(true, live.Pid()).sentinel(dead)
		}, gone: []string{"vm"}},
		{name: "stopped, its PID alive", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).record(false, live.Pid())
		}, gone: []string{"vm"}},
		{name: "state lock held", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).record(true, bboxDeadPID)
			startHelper(t, "lock", filepath.Join(vms, "vm", "data"), "ready")
		}, kept: []string{"vm"}},
		{name: "sentinel over brood-box's cap", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel(strings.Repeat("1", 2*bboxSentinelCap))
		}, kept: []string{"vm"}},
		{name: "empty sentinel", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel("")
		}, gone: []string{"vm"}},
		{name: "sentinel not a number", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel("not-a-pid")
		}, gone: []string{"vm"}},
		{name: "sentinel PID negative", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel("-1")
		}, gone: []string{"vm"}},
		{name: "sentinel PID zero", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel("0")
		}, gone: []string{"vm"}},
		{name: "sentinel PID fractional", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel("123.456")
		}, gone: []string{"vm"}},
		{name: "sentinel PID with trailing garbage", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel("123abc")
		}, gone: []string{"vm"}},
		{name: "no sessions", lay: func(*testing.T, string) {}},
		{name: "vms directory absent", lay: nil},
		{name: "sentinel padded with blanks", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel("  " + dead + "\n")
		}, gone: []string{"vm"}},
		{name: "five stale sessions", lay: func(t *testing.T, vms string) {
			for i := range 5 {
				at(fmt.Sprintf("stale-%d", i))(t, vms).sentinel(dead).log()
			}
		}, gone: []string{"stale-0", "stale-1", "stale-2", "stale-3", "stale-4"}},
		{name: "brood-box's own file in data, no state", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel(dead).log()
			writeFile(t, filepath.Join(vms, "vm", "data", "state.json"), "{}")
		}, gone: []string{"vm"}},
		{name: "bbox alive, runner dead", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).record(true, bboxDeadPID).sentinel(liveBbox)
		}, kept: []string{"vm"}},
		{name: "PID-only sentinels, one bbox alive", lay: func(t *testing.T, vms string) {
			at("alive")(t, vms).sentinel(strconv.Itoa(live.Pid()))
			at("dead")(t, vms).sentinel(dead)
		}, gone: []string{"dead"}, kept: []string{"alive"}},

		// Beyond brood-box's tests: what its sweep is for.
		{name: "bbox killed before Run saved state", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel(deadBbox).log()
			writeFile(t, filepath.Join(vms, "vm", "data", rootfsWorkName, "etc", "hostname"), "guest\n")
		}, gone: []string{"vm"}},
		{name: "bbox cloning, before Run saved state", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel(liveBbox).log()
			writeFile(t, filepath.Join(vms, "vm", "data", rootfsWorkName, "etc", "hostname"), "guest\n")
		}, kept: []string{"vm"}},
		{name: "sentinel PID reused by another program", lay: func(t *testing.T, vms string) {
			at("vm")(t, vms).sentinel(fmt.Sprintf("%d\n/usr/bin/bbox", live.Pid())).log()
		}, gone: []string{"vm"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vms := filepath.Join(t.TempDir(), "vms")
			if tc.lay != nil {
				mkdir(t, vms)
				tc.lay(t, vms)
			}
			before := map[string]map[string]string{}
			for _, name := range tc.kept {
				before[name] = snapshot(t, filepath.Join(vms, name))
			}

			rep, err := bboxSweep(vms, tc.current)
			if err != nil {
				t.Fatal(err)
			}

			for _, e := range rep.Errors {
				t.Errorf("reported %v", e)
			}
			for _, name := range tc.gone {
				mustNotExist(t, filepath.Join(vms, name))
			}
			for name, snap := range before {
				sameSnapshot(t, name, snap, snapshot(t, filepath.Join(vms, name)))
			}
			if tc.lay != nil {
				mustNotExist(t, filepath.Join(vms, TrashName))
			}
		})
	}
}
