// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package sysat_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// TestFileTypes stats one file of each type and checks that every helper
// names it as stat(2) does.
func TestFileTypes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "sock"), Net: "unix"})
	if err != nil {
		t.Skipf("no unix socket here: %v", err)
	}
	defer l.Close()

	fd, err := unix.Open(dir, sysat.DirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, tc := range []struct {
		name, typ                  string
		regular, isDir, link, fifo bool
	}{
		{name: "file", typ: "regular file", regular: true},
		{name: "dir", typ: "directory", isDir: true},
		{name: "link", typ: "symlink", link: true},
		{name: "fifo", typ: "FIFO", fifo: true},
		{name: "sock", typ: "socket"},
	} {
		var st unix.Stat_t
		if err := sysat.Fstatat(fd, tc.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
		if got := sysat.FileType(uint32(st.Mode)); got != tc.typ {
			t.Errorf("FileType(%s) = %q, want %q", tc.name, got, tc.typ)
		}
		if sysat.IsRegular(&st) != tc.regular || sysat.IsDir(&st) != tc.isDir ||
			sysat.IsSymlink(&st) != tc.link || sysat.IsFIFO(&st) != tc.fifo {
			t.Errorf("%s: IsRegular %v IsDir %v IsSymlink %v IsFIFO %v", tc.name,
				sysat.IsRegular(&st), sysat.IsDir(&st), sysat.IsSymlink(&st), sysat.IsFIFO(&st))
		}
	}
}

// TestDirFlags: a directory open with DirFlags refuses a symlink to a
// directory and a file, so a walk never leaves the tree it opened.
func TestDirFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("dir", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, sysat.DirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sub, err := sysat.Openat(fd, "dir", sysat.DirFlags, 0)
	if err != nil {
		t.Fatalf("open dir: %v", err)
	}
	unix.Close(sub)
	if _, err := sysat.Openat(fd, "link", sysat.DirFlags, 0); !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("open symlink: %v, want ELOOP or ENOTDIR", err)
	}
	if _, err := sysat.Openat(fd, "file", sysat.DirFlags, 0); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("open file: %v, want ENOTDIR", err)
	}
}

// TestAtCalls runs each descriptor-relative call once against a real
// directory: create, rename, chmod, access, read, remove.
func TestAtCalls(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fd, err := unix.Open(dir, sysat.DirFlags, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := sysat.Mkdirat(fd, "d", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := sysat.Renameat(fd, "d", fd, "e"); err != nil {
		t.Fatal(err)
	}
	if err := sysat.Fchmodat(fd, "e", 0o500, 0); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := sysat.Fstatat(fd, "e", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&0o777 != 0o500 {
		t.Fatalf("mode %#o, err %v; want 0500", st.Mode&0o777, err)
	}
	if err := sysat.Faccessat(fd, "e", unix.R_OK, 0); err != nil {
		t.Fatal(err)
	}
	if err := sysat.Unlinkat(fd, "e", unix.AT_REMOVEDIR); err != nil {
		t.Fatal(err)
	}
	f, err := sysat.Openat(fd, "f", unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(f)
	if _, err := unix.Write(f, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := sysat.Fchmod(f, 0o400); err != nil {
		t.Fatal(err)
	}
	if err := sysat.Fstat(f, &st); err != nil || st.Size != 5 || st.Mode&0o777 != 0o400 {
		t.Fatalf("size %d mode %#o, err %v", st.Size, st.Mode&0o777, err)
	}
	if _, err := unix.Seek(f, 0, 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := sysat.Read(f, buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if err := sysat.Unlinkat(fd, "f", 0); err != nil {
		t.Fatal(err)
	}
	if err := sysat.Fstatat(fd, "f", &st, unix.AT_SYMLINK_NOFOLLOW); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("after unlink: %v, want ENOENT", err)
	}
}
