// SPDX-License-Identifier: Apache-2.0

// THIS FILE IS THE AGREED API SKELETON. The fstree helper replaces the
// panics with real code (remove_unix.go etc.); names and signatures below
// are relied on by package gc.

// Package fstree removes and measures directory trees relative to directory
// descriptors: it never follows a symbolic link, never crosses into another
// filesystem, and names every failing path.
package fstree

import (
	"context"
	"errors"
	"os"
)

// ErrBudget is returned when ctx ended (deadline = deletion budget) before
// the tree was gone; what is left is intact and can be removed later.
var ErrBudget = errors.New("deletion budget exhausted")

// Result accounts for one removal or measurement.
type Result struct {
	// Bytes is the allocated size (st_blocks*512) of what was removed (or
	// measured); a file with several hard links inside the tree counts once.
	Bytes int64
	// Files and Dirs count removed (or measured) entries.
	Files, Dirs int64
	// Mounts lists paths of mount points found inside the tree (a different
	// st_dev than the tree's top): they and their ancestors are left in place.
	Mounts []string
	// Errors lists per-path failures (*os.PathError); the walk goes on.
	Errors []error
}

// OpenDir opens the directory rel below the open directory parent, one
// component at a time with O_NOFOLLOW|O_DIRECTORY, so no symlink anywhere
// in rel is followed. rel "" or "." returns a dup of parent.
func OpenDir(parent *os.File, rel string) (*os.File, error) { panic("not implemented") }

// RemoveAt removes the entry name of the directory parent, and everything
// below it when it is a directory. name must be a single path component. A
// symlink is unlinked, never followed. displayPath is used in error
// messages and Mounts. Returns ErrBudget (wrapped) when ctx ended first.
func RemoveAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	panic("not implemented")
}

// SizeAt measures the entry name of parent like RemoveAt would free it,
// without changing anything.
func SizeAt(ctx context.Context, parent *os.File, name, displayPath string) (Result, error) {
	panic("not implemented")
}
