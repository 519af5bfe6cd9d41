// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/stacklok/go-microvm/gc"
)

// pendingTrash is a collector trash directory that still holds entries: the
// rest of a collection that was interrupted or ran out of budget. The next
// collect empties it first.
type pendingTrash struct {
	Path    string
	Entries int
	// Bytes is the allocated size, -1 unless measured.
	Bytes int64
}

// findTrash returns root's trash directory when it holds entries.
func findTrash(ctx context.Context, root string, sizes bool) []pendingTrash {
	if t, ok := trashIn(ctx, root, sizes); ok {
		return []pendingTrash{t}
	}
	return nil
}

// trashIn returns the trash directory in dir when it holds entries.
func trashIn(ctx context.Context, dir string, sizes bool) (pendingTrash, bool) {
	p := filepath.Join(dir, gc.TrashName)
	fi, err := os.Lstat(p)
	if err != nil || !fi.IsDir() {
		return pendingTrash{}, false
	}
	f, err := os.Open(p)
	if err != nil {
		return pendingTrash{Path: p, Entries: -1, Bytes: -1}, true
	}
	names, _ := f.Readdirnames(-1)
	_ = f.Close() // a directory: its close has nothing to report
	if len(names) == 0 {
		return pendingTrash{}, false
	}
	t := pendingTrash{Path: p, Entries: len(names), Bytes: -1}
	if sizes {
		t.Bytes = treeBytes(ctx, p)
	}
	return t, true
}

// treeBytes is the allocated size of the tree at p: never following a
// symbolic link, never crossing into another filesystem, as the collector
// deletes it.
func treeBytes(ctx context.Context, p string) int64 {
	var dev uint64
	if fi, err := os.Lstat(p); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			dev = uint64(st.Dev)
		}
	}
	var total int64
	_ = filepath.WalkDir(p, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if uint64(st.Dev) != dev {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		total += int64(st.Blocks) * 512
		return nil
	})
	return total
}

// inTrash reports whether p lies in a collector trash directory: an error
// there is about an entry left by an earlier, interrupted run.
func inTrash(p string) bool {
	sep := string(filepath.Separator)
	return strings.Contains(p+sep, sep+gc.TrashName+sep)
}
