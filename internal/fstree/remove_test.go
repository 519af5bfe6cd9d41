// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package fstree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stacklok/go-microvm/internal/sysat"
	"github.com/stacklok/go-microvm/internal/testproc"
)

func TestRemoveAt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// build creates tree (not yet existing) and may point into
		// sentinel, which RemoveAt must leave intact.
		build func(t *testing.T, tree, sentinel string)
		files int64
		dirs  int64
		// unreadable trees need RemoveAt's chmod, so SizeAt cannot see
		// them unless running as root.
		unreadable bool
	}{
		{
			name:  "empty directory",
			build: func(t *testing.T, tree, _ string) { mkdirs(t, tree) },
			dirs:  1,
		},
		{
			name:  "top is a file",
			build: func(t *testing.T, tree, _ string) { writeFile(t, tree, 5000) },
			files: 1,
		},
		{
			name: "nested",
			build: func(t *testing.T, tree, _ string) {
				writeFile(t, filepath.Join(tree, "f"), 10)
				writeFile(t, filepath.Join(tree, "a", "f"), 4096)
				writeFile(t, filepath.Join(tree, "a", "b", "f"), 70000)
				writeFile(t, filepath.Join(tree, "a", "b", "c", "empty"), 0)
				mkdirs(t, filepath.Join(tree, "a", "e1"), filepath.Join(tree, "e2"))
			},
			files: 4, dirs: 6,
		},
		{
			name: "symlinks out of the tree",
			build: func(t *testing.T, tree, sentinel string) {
				mkdirs(t, filepath.Join(tree, "sub"))
				symlink(t, filepath.Join(sentinel, "file"), filepath.Join(tree, "ln-file"))
				symlink(t, sentinel, filepath.Join(tree, "ln-dir"))
				symlink(t, filepath.Join(sentinel, "sub")+"/", filepath.Join(tree, "sub", "ln-dir-slash"))
				symlink(t, "../../sentinel", filepath.Join(tree, "sub", "ln-rel"))
				symlink(t, filepath.Join(sentinel, "nothing-here"), filepath.Join(tree, "sub", "dangling"))
			},
			files: 5, dirs: 2,
		},
		{
			name:  "top is a symlink to a directory",
			build: func(t *testing.T, tree, sentinel string) { symlink(t, sentinel, tree) },
			files: 1,
		},
		{
			name:  "top is a dangling symlink",
			build: func(t *testing.T, tree, sentinel string) { symlink(t, filepath.Join(sentinel, "x"), tree) },
			files: 1,
		},
		{
			name: "odd names",
			build: func(t *testing.T, tree, _ string) {
				for _, n := range []string{"new\nline", "\xff\xfe-invalid-utf8", "-rf", "--", " lead space", "*", "-"} {
					writeFile(t, filepath.Join(tree, n), 1)
					writeFile(t, filepath.Join(tree, "d"+n, n), 1)
				}
			},
			files: 14, dirs: 8,
		},
		{
			name: "read-only and unreadable directories",
			build: func(t *testing.T, tree, _ string) {
				for _, d := range []string{"r-x", "---", "r--", "--x", "r-x-only-subdir"} {
					writeFile(t, filepath.Join(tree, d, "sub", "f"), 10)
					if d != "r-x-only-subdir" {
						writeFile(t, filepath.Join(tree, d, "f"), 10)
					}
				}
				chmods := map[string]os.FileMode{"r-x": 0o555, "---": 0, "r--": 0o444, "--x": 0o111, "r-x-only-subdir": 0o555}
				for d, m := range chmods {
					if err := os.Chmod(filepath.Join(tree, d, "sub"), m); err != nil {
						t.Fatal(err)
					}
					if err := os.Chmod(filepath.Join(tree, d), m); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.Chmod(tree, 0o555); err != nil {
					t.Fatal(err)
				}
			},
			files: 9, dirs: 11, unreadable: true,
		},
		{
			name: "many entries in one directory",
			build: func(t *testing.T, tree, _ string) {
				mkdirs(t, tree)
				// 1000 entries fill the 32 KiB getdents buffer twice over.
				for i := range 1000 {
					f, err := os.Create(filepath.Join(tree, fmt.Sprintf("a-rather-long-file-name-to-fill-buffers-%05d", i)))
					if err != nil {
						t.Fatal(err)
					}
					f.Close()
				}
			},
			files: 1000, dirs: 1,
		},
		{
			name: "wide",
			build: func(t *testing.T, tree, _ string) {
				for i := range 20 {
					for j := range 5 {
						for k := range 3 {
							writeFile(t, filepath.Join(tree, fmt.Sprint(i), fmt.Sprint(j), fmt.Sprint(k)), 100*k)
						}
					}
				}
			},
			files: 300, dirs: 1 + 20 + 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o Options
			tmp := t.TempDir()
			tree := filepath.Join(tmp, "tree")
			sentinel := filepath.Join(tmp, "sentinel")
			makeSentinel(t, sentinel)
			tt.build(t, tree, sentinel)
			before := snapshot(t, sentinel)
			ctx := context.Background()

			compareSize := !tt.unreadable || os.Geteuid() == 0
			var size Result
			if compareSize {
				treeBefore := snapshot(t, tmp)
				var err error
				size, err = sizeTree(t, ctx, o, tmp, "tree")
				if err != nil {
					t.Fatalf("SizeAt: %v", err)
				}
				sameSnapshot(t, "after SizeAt", treeBefore, snapshot(t, tmp))
			}

			res, err := removeTree(t, ctx, o, tmp, "tree")
			if err != nil {
				t.Fatalf("RemoveAt: %v (result %+v)", err, res)
			}
			mustNotExist(t, tree)
			sameSnapshot(t, "sentinel", before, snapshot(t, sentinel))
			if res.Files != tt.files || res.Dirs != tt.dirs {
				t.Errorf("removed %d files, %d dirs; want %d, %d", res.Files, res.Dirs, tt.files, tt.dirs)
			}
			if len(res.Mounts) != 0 || len(res.Errors) != 0 {
				t.Errorf("mounts %q, errors %v; want none", res.Mounts, res.Errors)
			}
			if compareSize && (size.Bytes != res.Bytes || size.Files != res.Files || size.Dirs != res.Dirs) {
				t.Errorf("SizeAt measured %d bytes, %d files, %d dirs; RemoveAt freed %d, %d, %d",
					size.Bytes, size.Files, size.Dirs, res.Bytes, res.Files, res.Dirs)
			}

			// Removing what is gone succeeds and frees nothing.
			again, err := removeTree(t, ctx, o, tmp, "tree")
			if err != nil || again.Files+again.Dirs+again.Bytes != 0 {
				t.Errorf("second RemoveAt = %+v, %v; want nothing, nil", again, err)
			}
		})
	}
}

func TestRemoveAtBadName(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	mkdirs(t, filepath.Join(tmp, "a", "b"))
	parent := openDir(t, tmp)
	for _, name := range []string{"", ".", "..", "a/b", "/a", "a/"} {
		for _, f := range []func(context.Context, *os.File, string, string) (Result, error){Options{}.RemoveAt, Options{}.SizeAt} {
			_, err := f(context.Background(), parent, name, name)
			var pe *os.PathError
			if !errors.As(err, &pe) || pe.Err != unix.EINVAL {
				t.Errorf("name %q: err %v; want *PathError EINVAL", name, err)
			}
		}
	}
	mustExist(t, filepath.Join(tmp, "a", "b"))
}

// TestRemoveAtSwappedSymlink swaps a directory for a symlink to the
// sentinel after its parent was listed and before it is opened: the
// symlink must be unlinked, the sentinel and the moved-away directory left
// alone.
func TestRemoveAtSwappedSymlink(t *testing.T) {
	t.Parallel()
	var o Options
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	sentinel := filepath.Join(tmp, "sentinel")
	moved := filepath.Join(tmp, "moved")
	makeSentinel(t, sentinel)
	victim := filepath.Join(tree, "a", "victim")
	writeFile(t, filepath.Join(victim, "inner", "f"), 10)
	writeFile(t, filepath.Join(tree, "a", "f"), 10)
	writeFile(t, filepath.Join(tree, "b", "f"), 10)
	before := snapshot(t, sentinel)

	var swapped atomic.Bool
	o.beforeOpen = func(p string) {
		if p != victim {
			return
		}
		if err := os.Rename(victim, moved); err != nil {
			t.Error(err)
			return
		}
		if err := os.Symlink(sentinel, victim); err != nil {
			t.Error(err)
			return
		}
		swapped.Store(true)
	}

	res, err := removeTree(t, context.Background(), o, tmp, "tree")
	if !swapped.Load() {
		t.Fatal("the hook never saw the victim directory")
	}
	if err != nil {
		t.Fatalf("RemoveAt: %v", err)
	}
	mustNotExist(t, tree)
	sameSnapshot(t, "sentinel", before, snapshot(t, sentinel))
	mustExist(t, filepath.Join(moved, "inner", "f"))
	// a/f, b/f and the symlink; tree, a, b.
	if res.Files != 3 || res.Dirs != 3 {
		t.Errorf("removed %d files, %d dirs; want 3, 3", res.Files, res.Dirs)
	}
}

// TestRemoveAtSwappedDirectory swaps a directory for another real directory
// after its parent was listed: the new one is part of the tree and goes.
func TestRemoveAtSwappedDirectory(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	victim := filepath.Join(tree, "victim")
	writeFile(t, filepath.Join(victim, "f"), 10)
	writeFile(t, filepath.Join(tmp, "other", "g"), 10)
	beforeOpen := func(p string) {
		if p != victim {
			return
		}
		if err := os.Rename(victim, filepath.Join(tmp, "old")); err != nil {
			t.Error(err)
		}
		if err := os.Rename(filepath.Join(tmp, "other"), victim); err != nil {
			t.Error(err)
		}
	}
	res, err := removeTree(t, context.Background(), Options{beforeOpen: beforeOpen}, tmp, "tree")
	if err != nil {
		t.Fatalf("RemoveAt: %v", err)
	}
	mustNotExist(t, tree)
	mustExist(t, filepath.Join(tmp, "old", "f"))
	if res.Files != 1 || res.Dirs != 2 {
		t.Errorf("removed %d files, %d dirs; want 1, 2", res.Files, res.Dirs)
	}
}

func TestRemoveAtHardLinks(t *testing.T) {
	t.Parallel()
	var o Options
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	const mib = 1 << 20
	writeFile(t, filepath.Join(tree, "a", "big"), mib)
	mkdirs(t, filepath.Join(tree, "b"))
	if err := os.Link(filepath.Join(tree, "a", "big"), filepath.Join(tree, "b", "link")); err != nil {
		t.Fatal(err)
	}
	size, res := sizeThenRemove(t, o, tmp, "tree")
	for _, r := range []Result{size, res} {
		if r.Files != 2 || r.Bytes < mib || r.Bytes >= mib+mib/2 {
			t.Errorf("result %+v: want 2 files and about 1 MiB", r)
		}
	}
	if size.Bytes != res.Bytes {
		t.Errorf("SizeAt %d bytes, RemoveAt %d", size.Bytes, res.Bytes)
	}
}

// TestRemoveAtHardLinkOutside: a file inside the tree that is also linked
// from outside it frees nothing when the tree goes, so it is not counted,
// and the outside link keeps the data; a file with two links inside the
// tree (beside it) counts once.
func TestRemoveAtHardLinkOutside(t *testing.T) {
	t.Parallel()
	var o Options
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	const mib = 1 << 20
	writeFile(t, filepath.Join(tree, "a", "shared"), mib)
	writeFile(t, filepath.Join(tree, "a", "twice"), mib)
	mkdirs(t, filepath.Join(tree, "b"))
	outside := filepath.Join(tmp, "outside")
	if err := os.Link(filepath.Join(tree, "a", "shared"), outside); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(tree, "a", "twice"), filepath.Join(tree, "b", "twice")); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(outside)
	if err != nil {
		t.Fatal(err)
	}
	size, res := sizeThenRemove(t, o, tmp, "tree")
	for _, r := range []Result{size, res} {
		// "twice" once (1 MiB plus the directories' blocks),
		// "shared" not at all.
		if r.Files != 3 || r.Bytes < mib || r.Bytes >= mib+mib/2 {
			t.Errorf("result %+v: want 3 files and about 1 MiB", r)
		}
	}
	got, err := os.ReadFile(outside)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("outside link after the removal: %v, same content %v", err, bytes.Equal(got, want))
	}
}

func TestRemoveAtBudgetAlreadyOver(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	writeFile(t, filepath.Join(tmp, "tree", "a", "f"), 10)
	before := snapshot(t, tmp)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, walk := range []func(*testing.T, context.Context, Options, string, string) (Result, error){removeTree, sizeTree} {
		res, err := walk(t, ctx, Options{}, tmp, "tree")
		if !errors.Is(err, ErrBudget) || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v; want ErrBudget and context.Canceled", err)
		}
		if res.Files+res.Dirs+res.Bytes != 0 {
			t.Errorf("result %+v; want nothing", res)
		}
	}
	sameSnapshot(t, "tree", before, snapshot(t, tmp))
}

// TestRemoveAtBudgetMidway ends the budget while the walk is under way; a
// second RemoveAt removes the rest, and the two results add up to what
// SizeAt measured.
func TestRemoveAtBudgetMidway(t *testing.T) {
	t.Parallel()
	var o Options
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	for i := range 20 {
		for j := range 10 {
			writeFile(t, filepath.Join(tree, fmt.Sprint(i), "sub", fmt.Sprint(j)), 1000*j)
		}
	}
	size, err := sizeTree(t, context.Background(), o, tmp, "tree")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opened atomic.Int32
	cancelling := o
	cancelling.beforeOpen = func(string) {
		if opened.Add(1) == 10 {
			cancel()
		}
	}
	first, err := removeTree(t, ctx, cancelling, tmp, "tree")
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("err = %v; want ErrBudget", err)
	}
	mustExist(t, tree)
	if first.Files >= size.Files {
		t.Errorf("first pass removed %d of %d files; want a part", first.Files, size.Files)
	}

	second, err := removeTree(t, context.Background(), o, tmp, "tree")
	if err != nil {
		t.Fatalf("second RemoveAt: %v", err)
	}
	mustNotExist(t, tree)
	if got := (Result{Bytes: first.Bytes + second.Bytes, Files: first.Files + second.Files, Dirs: first.Dirs + second.Dirs}); got.Bytes != size.Bytes || got.Files != size.Files || got.Dirs != size.Dirs {
		t.Errorf("removed %d bytes, %d files, %d dirs in two passes; SizeAt said %d, %d, %d",
			got.Bytes, got.Files, got.Dirs, size.Bytes, size.Files, size.Dirs)
	}
}

// makeDeep creates depth nested directories named deepName below dir with
// mkdirat, so no path string ever exceeds PATH_MAX, and a file every
// deepFileEvery levels. It returns the number of files.
func makeDeep(t *testing.T, dir string, depth int) int64 {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var files int64
	for i := range depth {
		if i%deepFileEvery == deepFileEvery-1 {
			f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(f)
			files++
		}
		if err := unix.Mkdirat(fd, deepName, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, deepName, sysat.DirFlags, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
	}
	unix.Close(fd)
	return files
}

// The deep trees: 200 levels of 31-byte names make 6,200-byte paths,
// beyond PATH_MAX (4096), so any walk that builds a path string for a
// syscall fails; and 200 levels are more than the walk's descriptor
// budget (maxOpenDirs) and the helper's RLIMIT_NOFILE of deepNofile, so a
// walk holding one descriptor per level fails the budget check and runs
// out of descriptors. deepNofile is below maxOpenDirs plus what the
// helper holds, so the walk meets EMFILE and must shed descriptors. More levels prove nothing
// more; GO_MICROVM_TEST_FULL=1 (make stress) builds 5,000.
var (
	deepName   = strings.Repeat("d", 31)
	deepLevels = testproc.Size(200, 5000)
)

const (
	deepFileEvery = 50
	deepNofile    = 14
)

// checkDeep fails the test if the deep trees would not prove what they
// are for.
func checkDeep(t *testing.T) {
	t.Helper()
	if deepLevels*(len(deepName)+1) <= unix.PathMax {
		t.Fatal("the tree would not be deeper than PATH_MAX")
	}
	if deepLevels <= maxOpenDirs || deepLevels <= deepNofile {
		t.Fatal("the tree would not be deeper than the descriptor budget")
	}
}

func TestRemoveAtDeeperThanPathMax(t *testing.T) {
	t.Parallel()
	var o Options
	checkDeep(t)
	tmp := t.TempDir()
	mkdirs(t, filepath.Join(tmp, "tree"))
	files := makeDeep(t, filepath.Join(tmp, "tree"), deepLevels)
	var peak int
	o.peakFDs = func(n int) { peak = n }

	size, err := sizeTree(t, context.Background(), o, tmp, "tree")
	if err != nil {
		t.Fatal(err)
	}
	if peak > maxOpenDirs {
		t.Errorf("SizeAt held %d directory descriptors; want at most %d", peak, maxOpenDirs)
	}
	res, err := removeTree(t, context.Background(), o, tmp, "tree")
	if err != nil {
		t.Fatal(err)
	}
	if peak > maxOpenDirs {
		t.Errorf("RemoveAt held %d directory descriptors; want at most %d", peak, maxOpenDirs)
	}
	mustNotExist(t, filepath.Join(tmp, "tree"))
	if res.Dirs != int64(deepLevels)+1 || res.Files != files || size.Dirs != res.Dirs || size.Bytes != res.Bytes {
		t.Errorf("RemoveAt %+v, SizeAt %+v; want %d dirs, %d files", res, size, deepLevels+1, files)
	}
}

// TestRemoveAtDeepUnderLowFileLimit removes a tree deeper than PATH_MAX in
// a helper process whose RLIMIT_NOFILE (deepNofile) is below its depth and
// below the walk's own descriptor budget.
func TestRemoveAtDeepUnderLowFileLimit(t *testing.T) {
	t.Parallel()
	checkDeep(t)
	tmp := t.TempDir()
	mkdirs(t, filepath.Join(tmp, "tree"))
	files := makeDeep(t, filepath.Join(tmp, "tree"), deepLevels)
	out := runHelper(t, nil, "FSTREE_DIR="+tmp, "FSTREE_NAME=tree", "FSTREE_NOFILE="+fmt.Sprint(deepNofile))
	mustNotExist(t, filepath.Join(tmp, "tree"))
	if out.Dirs != int64(deepLevels)+1 || out.Files != files {
		t.Errorf("helper removed %d dirs, %d files; want %d, %d", out.Dirs, out.Files, deepLevels+1, files)
	}
}

// errSymlink stands for the error of opening a symlink with
// O_NOFOLLOW|O_DIRECTORY: ELOOP or ENOTDIR, depending on the system.
var errSymlink = errors.New("ELOOP or ENOTDIR")

func TestOpenDir(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	mkdirs(t, filepath.Join(tmp, "a", "b", "c"))
	writeFile(t, filepath.Join(tmp, "a", "file"), 1)
	symlink(t, "b", filepath.Join(tmp, "a", "ln"))
	symlink(t, tmp, filepath.Join(tmp, "up"))
	parent := openDir(t, tmp)
	tests := []struct {
		rel  string
		want string // the directory opened, relative to tmp
		err  error
	}{
		{rel: "", want: "."},
		{rel: ".", want: "."},
		{rel: "a", want: "a"},
		{rel: "a/b/c", want: "a/b/c"},
		{rel: "a//b/./c/", want: "a/b/c"},
		{rel: "a/ln", err: errSymlink},
		{rel: "a/ln/c", err: errSymlink},
		{rel: "up", err: errSymlink},
		{rel: "a/file", err: unix.ENOTDIR},
		{rel: "a/missing", err: unix.ENOENT},
		{rel: "a/../a", err: unix.EINVAL},
		{rel: "..", err: unix.EINVAL},
		{rel: "/etc", err: unix.EINVAL},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.rel, "/", "|"), func(t *testing.T) {
			f, err := OpenDir(parent, tt.rel)
			if tt.err != nil {
				var pe *os.PathError
				if !errors.As(err, &pe) {
					t.Fatalf("OpenDir(%q) = %v; want *PathError %v", tt.rel, err, tt.err)
				}
				symlinkErr := tt.err == errSymlink && (pe.Err == unix.ELOOP || pe.Err == unix.ENOTDIR)
				if !errors.Is(err, tt.err) && !symlinkErr {
					t.Fatalf("OpenDir(%q) = %v; want *PathError %v", tt.rel, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenDir(%q): %v", tt.rel, err)
			}
			defer f.Close()
			got, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.Stat(filepath.Join(tmp, tt.want))
			if err != nil {
				t.Fatal(err)
			}
			if !os.SameFile(got, want) {
				t.Errorf("OpenDir(%q) opened another directory than %q", tt.rel, tt.want)
			}
		})
	}
}

// TestRemoveAtInUse: a directory holding the marker that Options.InUse
// calls in use is left, unentered, with its ancestors; one it calls free
// goes with the rest. InUseAt finds it first, changing nothing.
func TestRemoveAtInUse(t *testing.T) {
	t.Parallel()
	var o Options
	tmp := t.TempDir()
	tree := filepath.Join(tmp, "tree")
	live := filepath.Join(tree, "a", "live")
	dead := filepath.Join(tree, "b", "dead")
	writeFile(t, filepath.Join(live, "marker"), 1)
	writeFile(t, filepath.Join(live, "sub", "f"), 10)
	writeFile(t, filepath.Join(dead, "marker"), 1)
	writeFile(t, filepath.Join(dead, "sub", "f"), 10)
	writeFile(t, filepath.Join(tree, "a", "other"), 10)
	before := snapshot(t, live)
	var asked []string
	var mu sync.Mutex
	o.InUseMarker = "marker"
	o.InUse = func(fd int, path string) string {
		mu.Lock()
		asked = append(asked, path)
		mu.Unlock()
		if filepath.Base(path) == "live" {
			return "lease held"
		}
		return ""
	}
	// InUseAt finds the same, changing nothing.
	whole := snapshot(t, tree)
	res, err := o.InUseAt(context.Background(), openDir(t, tmp), "tree", tree)
	if err != nil || len(res.InUse) != 1 || res.InUse[0] != (InUse{Path: live, Reason: "lease held"}) {
		t.Fatalf("InUseAt = %+v, %v; want %s found", res, err, live)
	}
	sameSnapshot(t, "tree looked through", whole, snapshot(t, tree))
	asked = nil
	res, err = removeTree(t, context.Background(), o, tmp, "tree")
	if !errors.Is(err, ErrInUse) || len(res.InUse) != 1 || res.InUse[0] != (InUse{Path: live, Reason: "lease held"}) {
		t.Fatalf("RemoveAt = %+v, %v; want %s kept", res, err, live)
	}
	slices.Sort(asked)
	if !slices.Equal(asked, []string{live, dead}) {
		t.Errorf("asked about %q; want only the directories holding the marker", asked)
	}
	sameSnapshot(t, "live directory", before, snapshot(t, live))
	mustNotExist(t, filepath.Join(tree, "a", "other"))
	mustNotExist(t, filepath.Join(tree, "b"))
}

// TestRemoveAtConcurrentDeleter: another process removing the same tree
// at the same time is not an error: whatever it removed first is gone,
// which is what the walk was for. A round proves it when the two
// overlapped: the walk removed some of the tree and rm the rest. Rounds
// run until two did (the race is won either way often enough).
func TestRemoveAtConcurrentDeleter(t *testing.T) {
	t.Parallel()
	rm, err := exec.LookPath("rm")
	if err != nil {
		t.Skip("no rm")
	}
	const wide, deep = 40, 5
	const files, dirs = wide * deep, 1 + wide + 2*wide*deep
	overlapped := 0
	rounds := testproc.Size(8, 40)
	for round := 0; round < rounds && (overlapped < 2 || testproc.Full()); round++ {
		tmp := t.TempDir()
		for i := range wide {
			for j := range deep {
				writeFile(t, filepath.Join(tmp, "tree", fmt.Sprint(i), fmt.Sprint(j), "d", "f"), 10)
			}
		}
		other := exec.Command(rm, "-rf", filepath.Join(tmp, "tree"))
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		res, err := removeTree(t, context.Background(), Options{}, tmp, "tree")
		if werr := other.Wait(); werr != nil {
			t.Logf("rm: %v (it may meet our deletions too)", werr)
		}
		if err != nil {
			t.Fatalf("round %d: RemoveAt beside a concurrent rm: %v", round, err)
		}
		mustNotExist(t, filepath.Join(tmp, "tree"))
		if ours := res.Files + res.Dirs; ours > 0 && ours < files+dirs {
			overlapped++
		}
	}
	t.Logf("%d rounds overlapped", overlapped)
	if overlapped == 0 {
		t.Errorf("rm never removed part of the tree while the walk did, in %d rounds", rounds)
	}
}
