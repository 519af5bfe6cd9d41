// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/fstree"
)

// pendingTrash is a collector trash directory that still holds entries:
// the rest of a collection that was interrupted or ran out of budget, which
// the next collect empties first. Bytes is -1 unless measured.
type pendingTrash struct {
	Path    string
	Entries int
	Bytes   int64
}

// trashIn returns the trash directory in dir when it holds entries, with
// sizes what removing it would free, measured as the collector deletes it.
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
	_ = f.Close()
	if len(names) == 0 {
		return pendingTrash{}, false
	}
	t := pendingTrash{Path: p, Entries: len(names), Bytes: -1}
	if !sizes {
		return t, true
	}
	if parent, err := os.Open(dir); err == nil {
		// A partial measure still counts what it saw.
		r, _ := fstree.Options{}.SizeAt(ctx, parent, gc.TrashName, p)
		t.Bytes = r.Bytes
		_ = parent.Close()
	}
	return t, true
}

// inTrash reports whether p lies in a collector trash directory: an error
// there is about an entry left by an earlier, interrupted run.
func inTrash(p string) bool {
	sep := string(filepath.Separator)
	return strings.Contains(p+sep, sep+gc.TrashName+sep)
}
