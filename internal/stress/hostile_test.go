// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/fstree"
	"github.com/stacklok/go-microvm/internal/hangtest"
	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// callGuard is how long one gc call may run before the test calls it a
// hang. The goal is under a second; the guard is generous because the
// machine is shared, and the largest latency seen is printed instead.
const callGuard = 5 * time.Second

// latencies records the duration of every guarded gc call.
type latencies struct {
	mu    sync.Mutex
	max   time.Duration
	where string
	n     int
}

func (l *latencies) add(where string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if d > l.max {
		l.max, l.where = d, where
	}
}

// guarded runs fn in a goroutine and fails t when it has not returned
// within callGuard.
func guarded[T any](t *testing.T, lat *latencies, what string, fn func() (T, error)) (T, error) {
	t.Helper()
	start := time.Now()
	v, err := hangtest.Within(t, callGuard, what, fn)
	lat.add(t.Name()+" "+what, time.Since(start))
	return v, err
}

// hostileEnv is what a corpus case builds in: a fresh root, and a sentinel
// tree outside it that must not change.
type hostileEnv struct {
	t       *testing.T
	root    string
	outside string
	// cleanup actions run after the checks (unmount, kill holders).
	fd int // a directory descriptor a during action works in, or -1
}

// hostileCase is one malformed or hostile data directory.
type hostileCase struct {
	name  string
	what  string
	class gc.Class // "" means not a candidate at all
	// dir is the data directory relative to root ("." for root itself);
	// default: name.
	dir string
	// build lays the case out; dir is the absolute data directory.
	build func(e *hostileEnv, dir string)
	// during runs beside Collect until ctx ends.
	during func(ctx context.Context, e *hostileEnv, dir string)
	// after adds checks once Collect returned.
	after func(e *hostileEnv, dir string, rep *gc.Report)
	// alone: the case changes the root itself, so it is left out of the
	// run that puts every case in one root.
	alone bool
	// partial: the first Collect may leave work (a mount point, a swap
	// racing it) that a second Collect, after the hostility ends, finishes.
	partial bool
}

// orphanState writes a valid state with the run marker set and no lease:
// the plainest orphan, for cases whose hostility lies elsewhere.
func orphanState(e *hostileEnv, dir string) { markOrphan(e.t, dir) }

// rawState writes content as dir's state file, bypassing package state.
func rawState(content string) func(e *hostileEnv, dir string) {
	return func(e *hostileEnv, dir string) {
		mkdir(e.t, filepath.Join(dir, "rootfs-work", "etc"))
		writeFile(e.t, filepath.Join(dir, "rootfs-work", "etc", "hostname"), "vm\n")
		writeFile(e.t, filepath.Join(dir, state.FileName), content)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	mkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// smallRootfs gives dir a small rootfs-work.
func smallRootfs(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "rootfs-work", "etc", "hostname"), "vm\n")
	writeFile(t, filepath.Join(dir, "rootfs-work", "bin", "sh"), strings.Repeat("\x7fELF", 100))
}

// activeState writes an active state without the marker, so the PID rules
// decide, with edit applied last.
func activeState(edit func(s *state.State)) func(e *hostileEnv, dir string) {
	return func(e *hostileEnv, dir string) {
		smallRootfs(e.t, dir)
		writeStateFile(e.t, dir, func(s *state.State) {
			s.Active = true
			s.Leased = false
			edit(s)
		})
	}
}

// holder starts a helper process holding dir's lease or state lock, then
// stops it with SIGSTOP, so the lock is held by a process that will never
// answer.
func holder(e *hostileEnv, dir, mode string) {
	t := e.t
	cmd := helperCmd(mode, envTarget+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", mode, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("%s: %q\n%s", mode, line, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

// zombiePID starts a child that exits at once and is not reaped until the
// test ends, and returns its PID once the kernel shows it as a zombie.
func zombiePID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Wait() })
	pid := cmd.Process.Pid
	for i := 0; i < 1000; i++ {
		if info, err := procinfo.Lookup(pid); err == nil && info.Zombie {
			return pid
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("pid %d never became a zombie", pid)
	return 0
}

// mountTmpfs mounts a tmpfs on dir, or skips the test where mounting is
// refused. Every mount under the root is detached when the test ends,
// wherever a collector moved it.
func mountTmpfs(e *hostileEnv, dir string) {
	t := e.t
	t.Helper()
	mkdir(t, dir)
	if err := unix.Mount("stress", dir, "tmpfs", 0, "size=16m"); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			t.Skipf("mounting a tmpfs is refused here (%v): needs root", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { unmountUnder(t, e.root) })
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}

// deepTree makes a chain of directories below dir whose full path is far
// beyond PATH_MAX, working relative to descriptors as no path fits.
func deepTree(t *testing.T, dir string) {
	t.Helper()
	mkdir(t, dir)
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 200)
	for i := 0; i < 40; i++ {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := unix.Openat(fd, "file", unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Write(f, []byte("deep\n"))
		unix.Close(f)
		next, err := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
	}
	unix.Close(fd)
}

// stateJSON returns a state file's JSON with the given body fields after
// version 1.
func stateJSON(fields string) string {
	return `{"version":1,"name":"vm","image":"img","cpus":1,"memory_mb":128,` + fields + `,"created_at":"2026-11-29T00:00:00Z"}`
}

// hostileCorpus returns the cases. self is this process's identity.
func hostileCorpus(t *testing.T, self procinfo.Info) []hostileCase {
	exe, _ := os.Executable()
	now := time.Now()
	return []hostileCase{
		// The state file itself.
		{name: "state-fifo", what: "state file is a FIFO (reading must not block)", class: gc.ClassUnreadable,
			build: func(e *hostileEnv, dir string) {
				smallRootfs(e.t, dir)
				if err := unix.Mkfifo(filepath.Join(dir, state.FileName), 0o644); err != nil {
					e.t.Fatal(err)
				}
			}},
		{name: "state-dir", what: "state file is a directory", class: gc.ClassUnreadable,
			build: func(e *hostileEnv, dir string) {
				smallRootfs(e.t, dir)
				writeFile(e.t, filepath.Join(dir, state.FileName, "x"), "x")
			}},
		{name: "state-symlink-out", what: "state file is a symlink to a valid orphan state outside the root", class: gc.ClassUnreadable,
			build: func(e *hostileEnv, dir string) {
				smallRootfs(e.t, dir)
				symlink(e.t, filepath.Join(e.outside, "vm", state.FileName), filepath.Join(dir, state.FileName))
			}},
		{name: "state-giant-sparse", what: "state file is a 2 GiB sparse file", class: gc.ClassUnreadable,
			build: func(e *hostileEnv, dir string) {
				rawState(stateJSON(`"active":true,"leased":true`))(e, dir)
				if err := os.Truncate(filepath.Join(dir, state.FileName), 2<<30); err != nil {
					e.t.Fatal(err)
				}
			}},
		{name: "state-over-cap", what: "valid JSON padded to one byte over the 64 KiB cap", class: gc.ClassUnreadable,
			build: func(e *hostileEnv, dir string) {
				s := stateJSON(`"active":true,"leased":true`)
				rawState(s+strings.Repeat(" ", state.MaxFileSize+1-len(s)))(e, dir)
			}},
		{name: "state-truncated", what: "state file cut mid-JSON", class: gc.ClassUnreadable,
			build: rawState(`{"version":1,"active":tr`)},
		{name: "state-empty", what: "state file of 0 bytes", class: gc.ClassUnreadable,
			build: rawState(``)},
		{name: "state-null", what: "state file holds JSON null", class: gc.ClassUnreadable,
			build: rawState(`null`)},
		{name: "state-array", what: "state file holds a JSON array", class: gc.ClassUnreadable,
			build: rawState(`[1,2,3]`)},
		{name: "state-wrong-types", what: `"pid":"12", a string`, class: gc.ClassUnreadable,
			build: rawState(stateJSON(`"active":true,"pid":"12"`))},
		{name: "state-nul-tail", what: "valid JSON followed by 100 NUL bytes", class: gc.ClassUnreadable,
			build: rawState(stateJSON(`"active":true,"leased":true`) + strings.Repeat("\x00", 100))},
		{name: "version-99", what: "version 99, marker set", class: gc.ClassUnreadable,
			build: rawState(`{"version":99,"active":true,"leased":true}`)},

		// PIDs.
		{name: "pid-0", what: "active, no marker, pid 0", class: gc.ClassUnknown,
			build: rawState(stateJSON(`"active":true,"pid":0`))},
		{name: "pid-negative", what: "active, no marker, pid -1", class: gc.ClassUnknown,
			build: rawState(stateJSON(`"active":true,"pid":-1`))},
		{name: "pid-huge", what: "active, no marker, pid 1<<40 (truncates to 0 as a pid_t)", class: gc.ClassOrphan,
			build: rawState(stateJSON(`"active":true,"pid":1099511627776`))},
		{name: "pid-1-legacy", what: "active, no marker, pid 1, no start time, no identity (released file): pid 1 is not named go-microvm-runner", class: gc.ClassOrphan,
			build: rawState(stateJSON(`"active":true,"pid":1,"pid_start_time":"0001-01-01T00:00:00Z"`))},
		{name: "pid-1-recorded", what: "active, no marker, pid 1 recorded just now", class: gc.ClassLive,
			build: activeState(func(s *state.State) { s.PID = 1; s.PIDStartTime = now })},
		{name: "pid-self-recorded", what: "active, no marker, the collector's own pid recorded just now", class: gc.ClassLive,
			build: activeState(func(s *state.State) { s.PID = os.Getpid(); s.PIDStartTime = now })},
		{name: "pid-self-legacy", what: "active, no marker, own pid, no time, no identity: executable is not go-microvm-runner", class: gc.ClassOrphan,
			build: rawState(stateJSON(fmt.Sprintf(`"active":true,"pid":%d`, os.Getpid())))},
		{name: "pid-self-wrong-start", what: "own pid with a recorded kernel start time one tick off", class: gc.ClassOrphan,
			build: activeState(func(s *state.State) {
				s.PID = os.Getpid()
				s.PIDStartTime = now
				s.Runner = &state.Identity{StartTime: self.StartTime + 1, BootID: mustBootID(t), Executable: exe}
			})},
		{name: "pid-zombie", what: "active, no marker, the pid of an unreaped zombie", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				pid := zombiePID(e.t)
				activeState(func(s *state.State) { s.PID = pid; s.PIDStartTime = now })(e, dir)
			}},
		{name: "boot-id-other", what: "own pid and start time, but another boot id", class: gc.ClassOrphan,
			build: activeState(func(s *state.State) {
				s.PID = os.Getpid()
				s.PIDStartTime = now
				s.Runner = &state.Identity{StartTime: self.StartTime, BootID: "00000000-0000-0000-0000-000000000000", Executable: exe}
			})},
		{name: "before-boot", what: "own pid, pid_start_time in 2001", class: gc.ClassOrphan,
			build: activeState(func(s *state.State) {
				s.PID = os.Getpid()
				s.PIDStartTime = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
			})},
		{name: "stopped-stale-pid", what: "inactive with a stale pid 1", class: gc.ClassStopped,
			build: rawState(stateJSON(`"active":false,"pid":1`))},

		// Locks.
		{name: "lease-held-stopped", what: "marker set, lease held by a SIGSTOPped process", class: gc.ClassLive,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				holder(e, dir, "hold-lease")
			}},
		{name: "lock-held-stopped", what: "marker set, state lock held by a SIGSTOPped process", class: gc.ClassBusy,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				holder(e, dir, "hold-lock")
			}},
		{name: "lock-fifo", what: "marker set, state lock file is a FIFO", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				lock := filepath.Join(dir, state.LockFileName)
				os.Remove(lock)
				if err := unix.Mkfifo(lock, 0o644); err != nil {
					e.t.Fatal(err)
				}
			}},
		{name: "lock-symlink-out", what: "marker set, state lock file is a symlink to a file outside", class: gc.ClassUnknown,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				lock := filepath.Join(dir, state.LockFileName)
				os.Remove(lock)
				symlink(e.t, filepath.Join(e.outside, "lockfile"), lock)
			}},

		// Names.
		{name: "name-non-utf8", dir: "vm-\xff\xfe", what: "data dir and rootfs entries with invalid UTF-8 names", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				writeFile(e.t, filepath.Join(dir, "rootfs-work", "\xc3\x28", "\xa0\xa1"), "x")
			}},
		{name: "name-newline", dir: "vm\nnext", what: "data dir and rootfs entries with newlines, spaces, leading dashes", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				writeFile(e.t, filepath.Join(dir, "rootfs-work", "a\nb", " -rf \n"), "x")
				writeFile(e.t, filepath.Join(dir, "rootfs-work", "..."), "x")
			}},

		// Trees.
		{name: "readonly-tree", what: "rootfs with 0555 and 0000 directories, 0000 files, data dir 0555", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				rootfs := filepath.Join(dir, "rootfs-work")
				writeFile(e.t, filepath.Join(rootfs, "ro", "inner", "f"), "x")
				writeFile(e.t, filepath.Join(rootfs, "none", "g"), "x")
				writeFile(e.t, filepath.Join(rootfs, "h"), "x")
				for p, m := range map[string]os.FileMode{"ro/inner/f": 0, "h": 0, "ro/inner": 0o555, "ro": 0o555, "none": 0, ".": 0o555} {
					if err := os.Chmod(filepath.Join(rootfs, p), m); err != nil {
						e.t.Fatal(err)
					}
				}
				if err := os.Chmod(dir, 0o555); err != nil {
					e.t.Fatal(err)
				}
				e.t.Cleanup(func() { os.Chmod(dir, 0o755) })
			}},
		{name: "special-files", what: "rootfs with FIFOs, a unix socket and a character device", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				rootfs := filepath.Join(dir, "rootfs-work")
				mkdir(e.t, filepath.Join(rootfs, "run"))
				if err := unix.Mkfifo(filepath.Join(rootfs, "run", "fifo"), 0o644); err != nil {
					e.t.Fatal(err)
				}
				l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(rootfs, "run", "sock"), Net: "unix"})
				if err != nil {
					e.t.Fatal(err)
				}
				l.SetUnlinkOnClose(false)
				l.Close()
				// A device node where the kernel allows it (not in every container).
				unix.Mknod(filepath.Join(rootfs, "run", "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
			}},
		{name: "deep-pathmax", what: "rootfs 40 levels of 200-byte names: 8 KB paths, beyond PATH_MAX", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				deepTree(e.t, filepath.Join(dir, "rootfs-work"))
			}},
		{name: "hardlink-out", what: "rootfs holds a hard link to a file outside (and the state file is one too)", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				target := filepath.Join(e.outside, "hardlink-target.txt")
				if err := os.Link(target, filepath.Join(dir, "rootfs-work", "hl")); err != nil {
					e.t.Fatal(err)
				}
				if err := os.Link(target, filepath.Join(dir, "console.log")); err != nil {
					e.t.Fatal(err)
				}
			},
			after: func(e *hostileEnv, dir string, rep *gc.Report) {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(e.outside, "hardlink-target.txt"), &st); err != nil {
					e.t.Fatalf("outside hard link target: %v", err)
				}
				if st.Nlink != 1 {
					e.t.Errorf("outside hard link target has %d links, want 1 (the links inside the orphan unlinked)", st.Nlink)
				}
			}},
		{name: "rootfs-symlink-out", what: "rootfs-work is a symlink to a directory outside", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				symlink(e.t, e.outside, filepath.Join(dir, "rootfs-work"))
			}},
		{name: "rootfs-file", what: "rootfs-work is a regular file", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				writeFile(e.t, filepath.Join(dir, "rootfs-work"), "not a dir")
			}},
		{name: "rootfs-symlinks-in", what: "rootfs holds symlinks to outside, to /, to .., and loops", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				rootfs := filepath.Join(dir, "rootfs-work")
				mkdir(e.t, filepath.Join(rootfs, "a"))
				symlink(e.t, e.outside, filepath.Join(rootfs, "out"))
				symlink(e.t, filepath.Join(e.outside, "precious.txt"), filepath.Join(rootfs, "a", "file"))
				symlink(e.t, "/", filepath.Join(rootfs, "slash"))
				symlink(e.t, "..", filepath.Join(rootfs, "a", "up"))
				symlink(e.t, "loop2", filepath.Join(rootfs, "loop1"))
				symlink(e.t, "loop1", filepath.Join(rootfs, "loop2"))
			}},
		{name: "symlink-swap", what: "rootfs-work/x flips between a full directory and a symlink to outside (renameat2 EXCHANGE) while Collect runs", class: gc.ClassOrphan,
			partial: true,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				rootfs := filepath.Join(dir, "rootfs-work")
				for i := 0; i < 20; i++ {
					for j := 0; j < 50; j++ {
						writeFile(e.t, filepath.Join(rootfs, "x", fmt.Sprintf("s%02d", i), fmt.Sprintf("f%02d", j)), "swap\n")
					}
				}
				symlink(e.t, e.outside, filepath.Join(rootfs, "y"))
				fd, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY, 0)
				if err != nil {
					e.t.Fatal(err)
				}
				e.fd = fd
				e.t.Cleanup(func() { unix.Close(fd) })
			},
			during: func(ctx context.Context, e *hostileEnv, dir string) {
				// The descriptor follows rootfs-work into the trash, so
				// the flipping goes on while the tree is being deleted.
				swaps := 0
				for ctx.Err() == nil {
					if unix.Renameat2(e.fd, "x", e.fd, "y", unix.RENAME_EXCHANGE) == nil {
						swaps++
					}
				}
				e.t.Logf("%d swaps while Collect ran", swaps)
			}},
		{name: "mount-inside", what: "a tmpfs mounted at rootfs-work/mnt", class: gc.ClassOrphan,
			partial: true,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				mnt := filepath.Join(dir, "rootfs-work", "mnt")
				mountTmpfs(e, mnt)
				writeFile(e.t, filepath.Join(mnt, "on-tmpfs"), "kept\n")
			},
			after: func(e *hostileEnv, dir string, rep *gc.Report) {
				found := false
				// The error is under the data directory; its text names
				// the mount point, left where it is.
				mnt := filepath.Join(dir, "rootfs-work", "mnt")
				for _, pe := range rep.Errors {
					if errors.Is(pe.Err, fstree.ErrMountPoint) && strings.Contains(pe.Error(), mnt) {
						found = true
					}
				}
				if !found {
					e.t.Errorf("mount point not reported: %v", rep.Errors)
				}
				if data, err := os.ReadFile(filepath.Join(mnt, "on-tmpfs")); err != nil || string(data) != "kept\n" {
					e.t.Errorf("the file on the tmpfs is not in place, untouched: %q, %v", data, err)
				}
				unmountUnder(e.t, e.root)
			}},
		{name: "datadir-mount", what: "the data directory is itself a tmpfs mount point", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				mountTmpfs(e, dir)
				orphanState(e, dir)
				smallRootfs(e.t, dir)
			}},

		// Layouts.
		{name: "datadir-symlink", dir: "vm-link", what: "root/vm-link is a symlink to an orphan outside", class: "",
			build: func(e *hostileEnv, dir string) {
				symlink(e.t, filepath.Join(e.outside, "vm"), dir)
			}},
		{name: "too-deep", dir: "a/b/c", what: "an orphan at depth 3", class: "",
			build: func(e *hostileEnv, dir string) { orphanState(e, dir); smallRootfs(e.t, dir) }},
		{name: "own-prefix", dir: ".go-microvm-gc-x", what: "an orphan under a name of the collector's own", class: "",
			build: func(e *hostileEnv, dir string) { orphanState(e, dir); smallRootfs(e.t, dir) }},
		{name: "foreign-files", dir: "app/data", what: "orphan at depth 2 with foreign files, cache/, an embedder state.json, stale state-*.json.tmp", class: gc.ClassOrphan,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				writeFile(e.t, filepath.Join(dir, "state-123.json.tmp"), "{")
				writeFile(e.t, filepath.Join(dir, "state-x.json.tmp"), "")
				writeFile(e.t, filepath.Join(dir, "console.log"), "boot\n")
				writeFile(e.t, filepath.Join(dir, "notes.txt"), "foreign\n")
				writeFile(e.t, filepath.Join(dir, "state.json"), `{"embedder":1}`)
				writeFile(e.t, filepath.Join(dir, "cache", "layer.tar"), "layer")
				writeFile(e.t, filepath.Join(dir, "..", "app.log"), "embedder log\n")
			},
			after: func(e *hostileEnv, dir string, rep *gc.Report) {
				for _, p := range []string{"notes.txt", "state.json", "cache/layer.tar", "../app.log"} {
					if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
						e.t.Errorf("foreign file %s: %v", p, err)
					}
				}
				for _, p := range []string{"state-123.json.tmp", "state-x.json.tmp", "console.log", state.LockFileName} {
					if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
						e.t.Errorf("go-microvm file %s left: %v", p, err)
					}
				}
			}},
		{name: "root-is-datadir", dir: ".", what: "root itself is the data dir, with the image cache in root/cache", class: gc.ClassOrphan, alone: true,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				writeFile(e.t, filepath.Join(dir, "cache", "blobs", "sha256-1"), "blob")
			},
			after: func(e *hostileEnv, dir string, rep *gc.Report) {
				if _, err := os.Lstat(filepath.Join(dir, "cache", "blobs", "sha256-1")); err != nil {
					e.t.Errorf("image cache: %v", err)
				}
			}},
		{name: "trash-symlink-out", dir: "vm", what: "root/.go-microvm-gc-trash is a symlink to a directory outside; an orphan beside it", class: gc.ClassOrphan, alone: true, partial: true,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				symlink(e.t, filepath.Join(e.outside, "trash-lookalike"), filepath.Join(e.root, gc.TrashName))
			}},
		{name: "trash-file", dir: "vm", what: "root/.go-microvm-gc-trash is a regular file; an orphan beside it", class: gc.ClassOrphan, alone: true, partial: true,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				writeFile(e.t, filepath.Join(e.root, gc.TrashName), "not a dir")
			}},
		{name: "rootlock-symlink-out", dir: "vm", what: "root/.go-microvm-gc.lock is a symlink to a file outside", class: gc.ClassOrphan, alone: true, partial: true,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				symlink(e.t, filepath.Join(e.outside, "lockfile"), filepath.Join(e.root, gc.LockName()))
			}},
		{name: "rootlock-fifo", dir: "vm", what: "root/.go-microvm-gc.lock is a FIFO", class: gc.ClassOrphan, alone: true, partial: true,
			build: func(e *hostileEnv, dir string) {
				orphanState(e, dir)
				smallRootfs(e.t, dir)
				fifo := filepath.Join(e.root, gc.LockName())
				if err := unix.Mkfifo(fifo, 0o644); err != nil {
					e.t.Fatal(err)
				}
				e.t.Cleanup(func() { unblockFIFO(fifo) })
			}},
	}
}

// unblockFIFO opens fifo for reading and writing at once, which releases
// any open(2) of it still blocked waiting for the other end, so a hang
// found by the test does not outlive it.
func unblockFIFO(fifo string) {
	if fd, err := unix.Open(fifo, unix.O_RDWR|unix.O_NONBLOCK, 0); err == nil {
		unix.Close(fd)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	mkdir(t, filepath.Dir(link))
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mustBootID(t *testing.T) string {
	id, err := procinfo.BootID()
	if err != nil {
		t.Fatalf("boot id: %v", err)
	}
	return id
}

// safeSum is treeSum for trees that may hold paths beyond PATH_MAX or giant
// files: it reports an error instead of failing.
func safeSum(dir string) (map[string]string, error) {
	sum := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %o %d", fi.Mode().Type(), fi.Mode().Perm(), fi.Size())
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			desc += " -> " + target
		} else if fi.Mode().IsRegular() && fi.Size() < 1<<20 {
			h, err := fileDigest(p)
			if err != nil {
				return err
			}
			desc += " " + h
		}
		sum[rel] = desc
		return nil
	})
	return sum, err
}

// TestHostileCorpus feeds gc malformed and hostile data directories, one
// root per case and then all of them in one root. For each: Scan gives the
// expected class; Orphans lists it exactly when it is an orphan; Scan and
// Orphans change nothing; Collect reclaims an orphan's go-microvm files
// and leaves any other candidate as it was; nothing outside the root
// changes; no call hangs; and a second Collect leaves no orphan and no
// trash.
func TestHostileCorpus(t *testing.T) {
	self, err := procinfo.Lookup(os.Getpid())
	if err != nil {
		t.Fatalf("own identity: %v", err)
	}
	corpus := hostileCorpus(t, self)
	lat := &latencies{}
	t.Run("each", func(t *testing.T) {
		for _, c := range corpus {
			t.Run(c.name, func(t *testing.T) { runHostile(t, lat, []hostileCase{c}) })
		}
	})
	t.Run("together", func(t *testing.T) {
		var all []hostileCase
		for _, c := range corpus {
			if !c.alone && c.during == nil && !strings.Contains(c.name, "mount") {
				all = append(all, c)
			}
		}
		runHostile(t, lat, all)
	})
	t.Logf("%d cases; %d guarded gc calls, the slowest %v (%s)", len(corpus), lat.n, lat.max, lat.where)
	var b strings.Builder
	b.WriteString("| case | what | expected class |\n| --- | --- | --- |\n")
	for _, c := range corpus {
		class := string(c.class)
		if class == "" {
			class = "not a candidate"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", c.name, c.what, class)
	}
	t.Logf("corpus table:\n%s", b.String())
}

// runHostile lays the cases out in one fresh root and runs the checks.
func runHostile(t *testing.T, lat *latencies, cases []hostileCase) {
	top := t.TempDir()
	root := filepath.Join(top, "root")
	outside := filepath.Join(top, "outside")
	mkdir(t, root)
	makeSentinel(t, outside)
	outSum := treeSum(t, outside)
	e := &hostileEnv{t: t, root: root, outside: outside, fd: -1}

	dirs := make([]string, len(cases))
	for i, c := range cases {
		rel := c.dir
		if rel == "" {
			rel = c.name
		}
		dirs[i] = filepath.Join(root, rel)
		c.build(e, dirs[i])
	}
	rootSum, rootSumErr := safeSum(root)

	cands, err := guarded(t, lat, "Scan", func() ([]gc.Candidate, error) { return gc.Scan(root) })
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	got := map[string]gc.Candidate{}
	for _, c := range cands {
		got[c.Path] = c
	}
	for i, c := range cases {
		cand, ok := got[dirs[i]]
		switch {
		case c.class == "" && ok:
			t.Errorf("%s: a candidate (%s, %s), want none", c.name, cand.Class, cand.Reason)
		case c.class != "" && !ok:
			t.Errorf("%s: not a candidate, want %s", c.name, c.class)
		case ok && cand.Class != c.class:
			t.Errorf("%s: class %s (%s: %s), want %s", c.name, cand.Class, cand.Reason, cand.Detail, c.class)
		}
		delete(got, dirs[i])
	}
	for p, c := range got {
		t.Errorf("unexpected candidate %q: %s (%s)", p, c.Class, c.Reason)
	}

	orphans, err := guarded(t, lat, "Orphans", func() ([]gc.Orphan, error) { return gc.Orphans(root) })
	if err != nil {
		t.Fatalf("Orphans: %v", err)
	}
	isOrphan := map[string]bool{}
	for _, o := range orphans {
		isOrphan[o.Path] = true
	}
	for i, c := range cases {
		if isOrphan[dirs[i]] != (c.class == gc.ClassOrphan) {
			t.Errorf("%s: listed by Orphans %v, class %s", c.name, isOrphan[dirs[i]], c.class)
		}
	}
	if rootSumErr == nil {
		after, err := safeSum(root)
		if err != nil {
			t.Errorf("sum root after Scan and Orphans: %v", err)
		} else if _, lines := diffSums(rootSum, after, 10); len(lines) > 0 {
			t.Errorf("Scan or Orphans changed the root:\n%s", strings.Join(lines, "\n"))
		}
	}
	keptSums := map[int]map[string]string{}
	for i, c := range cases {
		if c.class != gc.ClassOrphan && c.dir != "." {
			if s, err := safeSum(dirs[i]); err == nil {
				keptSums[i] = s
			}
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, c := range cases {
		if c.during != nil {
			wg.Add(1)
			go func() { defer wg.Done(); c.during(ctx, e, dirs[i]) }()
		}
	}
	rep, err := guarded(t, lat, "Collect", func() (*gc.Report, error) { return gc.Collect(root) })
	stop()
	wg.Wait()
	if err != nil {
		partial := false
		for _, c := range cases {
			partial = partial || c.partial
		}
		if !partial {
			t.Fatalf("Collect: %v", err)
		}
		t.Logf("Collect: %v", err)
		rep = &gc.Report{}
	}
	for _, pe := range rep.Errors {
		t.Logf("Collect reported: %v", &pe)
	}
	reclaimed := map[string]bool{}
	for _, o := range rep.Reclaimed {
		reclaimed[o.Path] = true
	}
	for i, c := range cases {
		switch {
		case c.class == gc.ClassOrphan && !reclaimed[dirs[i]] && !c.partial:
			t.Errorf("%s: orphan not reclaimed", c.name)
		case c.class != gc.ClassOrphan && reclaimed[dirs[i]]:
			t.Errorf("%s: %s reclaimed", c.name, c.class)
		}
		if c.class == gc.ClassOrphan && reclaimed[dirs[i]] {
			for _, name := range []string{"rootfs-work", state.FileName} {
				if _, err := os.Lstat(filepath.Join(dirs[i], name)); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s: %s left after reclaim (%v)", c.name, name, err)
				}
			}
		}
		if want, ok := keptSums[i]; ok {
			if now, err := safeSum(dirs[i]); err != nil {
				t.Errorf("%s: sum after Collect: %v", c.name, err)
			} else if _, lines := diffSums(want, now, 10); len(lines) > 0 {
				t.Errorf("%s (%s) changed by Collect:\n%s", c.name, c.class, strings.Join(lines, "\n"))
			}
		}
		if c.after != nil {
			c.after(e, dirs[i], rep)
		}
	}
	checkSame(t, "outside the root", outside, outSum)
	t.Logf("first Collect: %d reclaimed, %d kept, %d errors", len(rep.Reclaimed), len(rep.Kept), len(rep.Errors))

	// The hostility is over (swaps stopped, mounts detached): the next
	// Collect finishes every orphan and empties the trash. Root-level
	// traps (a symlinked or FIFO lock, a file or symlink as trash) are
	// removed first, as an operator would after reading the report.
	for _, name := range []string{gc.TrashName, gc.LockName()} {
		if fi, err := os.Lstat(filepath.Join(root, name)); err == nil && !fi.IsDir() && (name == gc.TrashName || !fi.Mode().IsRegular()) {
			os.Remove(filepath.Join(root, name))
		}
	}
	rep2, err := guarded(t, lat, "second Collect", func() (*gc.Report, error) { return gc.Collect(root) })
	if err != nil {
		t.Fatalf("second Collect: %v", err)
	}
	for _, pe := range rep2.Errors {
		t.Errorf("second Collect error: %v", &pe)
	}
	for _, o := range rep2.Reclaimed {
		ok := false
		for i, c := range cases {
			ok = ok || (dirs[i] == o.Path && c.partial)
		}
		if !ok {
			t.Errorf("second Collect reclaimed %s, which the first should have", o.Path)
		}
	}
	if left, err := gc.Orphans(root); err != nil || len(left) != 0 {
		t.Errorf("after the second Collect: orphans %v, err %v", left, err)
	}
	if left := trashEntries(t, root); len(left) != 0 {
		t.Errorf("after the second Collect the trash holds %v", left)
	}
	checkSame(t, "outside the root", outside, outSum)
}
