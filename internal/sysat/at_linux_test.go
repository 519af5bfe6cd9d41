// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package sysat_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// TestLinuxCalls: Statx and name_to_handle_at see the entry Getdents
// lists.
func TestLinuxCalls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, sysat.DirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	buf := make([]byte, 4096)
	n, err := sysat.Getdents(fd, buf)
	if err != nil || !bytes.Contains(buf[:n], []byte("f\x00")) {
		t.Fatalf("getdents: %d bytes, %v; want an entry f", n, err)
	}

	const mask = unix.STATX_TYPE | unix.STATX_INO
	var sx unix.Statx_t
	if err := sysat.Statx(fd, "f", unix.AT_SYMLINK_NOFOLLOW, mask, &sx); err != nil {
		if errors.Is(err, unix.ENOSYS) {
			t.Skip("no statx on this kernel")
		}
		t.Fatal(err)
	}
	if sx.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Fatalf("statx: mode %#o, want a regular file", sx.Mode)
	}
	if err := sysat.Statx(fd, "missing", 0, mask, &sx); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("statx of a missing name: %v, want ENOENT", err)
	}

	if _, _, err := sysat.NameToHandleAt(fd, "f", 0); err != nil && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		t.Fatalf("name_to_handle_at: %v", err)
	}
}
