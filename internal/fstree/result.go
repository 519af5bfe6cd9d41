// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package fstree

import "errors"

// Errors a walk returns wrapped, the rest of the tree dealt with.
var (
	// ErrBudget: the context ended first; what is left is intact.
	ErrBudget = errors.New("deletion budget exhausted")
	// ErrMountPoint: RemoveAt left Result.Mounts and their ancestors.
	ErrMountPoint = errors.New("mount point left in place")
	// ErrInUse: RemoveAt left Result.InUse and their ancestors.
	ErrInUse = errors.New("directory in use left in place")
)

// InUse is a directory that Options.InUse kept, and the reason it gave.
type InUse struct{ Path, Reason string }

// Result accounts for one walk. Bytes is the allocated size (st_blocks*512)
// of what was removed or measured, directories and symlinks included; a
// hard-linked file counts once the walk met as many links as it had when
// first seen, so not at all while a link outside the tree keeps it. Files
// counts every name, Dirs every directory. Mounts (sorted) and InUse
// (sorted by path) were left in place with their ancestors, unentered and
// uncounted. Errors are per-path *os.PathError: the walk went on, leaving
// the ancestors of a failed entry without a further error.
type Result struct {
	Bytes       int64
	Files, Dirs int64
	Mounts      []string
	InUse       []InUse
	Errors      []error
}

// Options tunes a walk; the zero value is ready to use. A walk is one
// goroutine and holds at most 16 directory descriptors whatever the depth.
type Options struct {
	// InUse, when set, is asked about each directory holding an entry
	// named InUseMarker before anything in it is touched, with the walk's
	// descriptor of it (not to be closed or kept) and its display path.
	// A non-empty reason keeps the directory (Result.InUse).
	InUse       func(dirfd int, path string) (reason string)
	InUseMarker string

	dirsOnly   bool                     // InUseAt: skip what the listing says is no directory
	mounts     mountMethod              // forced by tests to exercise each fallback
	beforeOpen func(displayPath string) // tests: runs before a listed directory is opened
	peakFDs    func(int)                // tests: receives the most descriptors held at once
}
