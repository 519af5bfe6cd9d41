// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/stacklok/go-microvm/internal/procinfo"
	"github.com/stacklok/go-microvm/state"
)

// deadPID can never name a process: it is above the largest pid_max of
// Linux (2^22) and of macOS.
const deadPID = 2147483000

// embedderCloning is the line the demo embedder prints once it holds its
// claim and has started cloning.
const embedderCloning = "cloning"

// demoRootfs is the tree writeRootfs clones: a few MB of real files, so
// that the bytes freed are visible.
var demoRootfs = []struct {
	path string
	size int
}{
	{"etc/os-release", 96},
	{"etc/hostname", 8},
	{"bin/busybox", 1 << 20},
	{"lib/libc.so.6", 1 << 20},
	{"usr/share/sandbox/data.bin", 1 << 20},
}

// demoRootfsBytes is a lower bound of the space one rootfs-work takes.
const demoRootfsBytes = 3 << 20

// writeRootfs writes a small rootfs into dir, as a COW clone would.
func writeRootfs(dir string) error {
	rng := rand.New(rand.NewChaCha8([32]byte{'g', 'o', '-', 'm', 'i', 'c', 'r', 'o', 'v', 'm'}))
	for _, f := range demoRootfs {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write rootfs: %w", err)
		}
		data := make([]byte, f.size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("write rootfs: %w", err)
		}
	}
	return nil
}

// writeReleasedVM writes a data directory as released go-microvm leaves it
// for an active VM: a rootfs-work, a log, an empty state lock and a state
// with pid and pid_start_time only (no run marker, no exact identity).
func writeReleasedVM(dir string, pid int, pidStart time.Time) error {
	if err := writeRootfs(filepath.Join(dir, "rootfs-work")); err != nil {
		return err
	}
	st := state.State{
		Version:      1,
		Active:       true,
		Name:         filepath.Base(dir),
		Image:        demoImage,
		CPUs:         1,
		MemoryMB:     256,
		PID:          pid,
		PIDStartTime: pidStart.UTC(),
		CreatedAt:    pidStart.UTC(),
	}
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode released state: %w", err)
	}
	files := map[string][]byte{
		state.FileName:     data,
		state.LockFileName: nil,
		"console.log":      []byte("[    0.000000] Linux version 6.6.0 (demo)\n"),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			return fmt.Errorf("write released state: %w", err)
		}
	}
	return nil
}

// checksums maps every entry below dir to a digest of its content (files),
// its target (symlinks) or its type; the logs that runners append to are
// left out. Nothing is followed and FIFOs are not opened.
func checksums(dir string) (map[string]string, error) {
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case e.Name() == "console.log" || e.Name() == "vm.log":
			return nil
		case e.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			sums[rel] = "-> " + target
			return err
		case e.Type().IsRegular():
			data, err := os.ReadFile(p)
			sum := sha256.Sum256(data)
			sums[rel] = hex.EncodeToString(sum[:])
			return err
		case !e.IsDir():
			sums[rel] = e.Type().String()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checksum %s: %w", dir, err)
	}
	return sums, nil
}

// Import paths of the command the demo runs and of its helper processes,
// built at demo time.
const (
	gcPkg         = "github.com/stacklok/go-microvm/cmd/go-microvm-gc"
	standinPkg    = "github.com/stacklok/go-microvm/internal/cmd/go-microvm-runner"
	demoHelperPkg = "github.com/stacklok/go-microvm/internal/cmd/go-microvm-gc-demo/demohelper"
)

// halfCloneBytes is what the demo embedder clones before it is killed.
const halfCloneBytes = 1 << 20

// buildDemoHelpers builds go-microvm-gc, the stand-in runner and the demo
// helper into dir with the go command.
func buildDemoHelpers(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build demo helpers: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), gcPkg, standinPkg, demoHelperPkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build with the go command (the demo runs from a go-microvm source tree: make demo): %w\n%s", err, out)
	}
	return nil
}

func bootTime() (time.Time, error) {
	t, err := procinfo.BootTime()
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: %w", err)
	}
	return t, nil
}

// helperProcess is the demo helper in one of its modes. Its standard input
// is a pipe from the demo, so that it exits on its own should the demo die
// first.
type helperProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	once   sync.Once
}

func startHelper(path string, args ...string) (*helperProcess, error) {
	cmd := exec.Command(path, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &helperProcess{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}, nil
}

func (h *helperProcess) pid() int { return h.cmd.Process.Pid }

// readLine reads one line of the helper's output, giving up after
// demoGuard.
func (h *helperProcess) readLine() (string, error) {
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := h.stdout.ReadString('\n')
		ch <- result{strings.TrimSpace(line), err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-time.After(demoGuard):
		return "", errors.New("helper process said nothing")
	}
}

// alive reports whether the helper still runs (a zombie does not).
func (h *helperProcess) alive() bool {
	info, err := procinfo.Lookup(h.pid())
	return err == nil && !info.Zombie
}

// kill SIGKILLs the helper and reaps it. Safe to call twice.
func (h *helperProcess) kill() {
	h.once.Do(func() {
		_ = h.cmd.Process.Kill()
		_ = h.stdin.Close()
		_ = h.cmd.Wait()
	})
}
