// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package fstree

import "errors"

// ErrBudget is returned (wrapped, together with the context's cause) when
// the context ended before the walk was complete; what is left is intact
// and can be removed later.
var ErrBudget = errors.New("deletion budget exhausted")

// ErrMountPoint is returned (wrapped) by RemoveAt when mount points were
// found inside the tree: they are listed in Result.Mounts and were left in
// place together with their ancestors; everything else was removed.
var ErrMountPoint = errors.New("mount point left in place")

// ErrInUse is returned (wrapped) by RemoveAt when Options.InUse kept
// directories of the tree: they are listed in Result.InUse and were left in
// place together with their ancestors; everything else was removed.
var ErrInUse = errors.New("directory in use left in place")

// InUse is a directory of the tree that Options.InUse said is in use.
type InUse struct {
	// Path is the directory's display path.
	Path string
	// Reason is what Options.InUse said.
	Reason string
}

// Result accounts for one removal or measurement.
type Result struct {
	// Bytes is the allocated size (st_blocks*512) of what was removed (or
	// measured), directories and symbolic links included. A file with
	// several hard links counts only when the walk removes (or meets) all
	// of them, i.e. when the links it met reach the st_nlink seen the
	// first time: once for two links inside the tree, not at all while a
	// link outside the tree keeps the data alive.
	Bytes int64
	// Files and Dirs count removed (or measured) entries; every name of a
	// hard-linked file counts in Files.
	Files, Dirs int64
	// Mounts lists the display paths of mount points found inside the tree
	// (another mount id than the tree's top where the system gives mount
	// ids, else another st_dev; where nothing can tell a bind mount of the
	// same filesystem, every directory below the top), sorted: they and
	// their ancestors are left in place.
	Mounts []string
	// InUse lists the directories that Options.InUse kept, sorted by path:
	// they and their ancestors are left in place, not entered, not counted.
	InUse []InUse
	// Errors lists per-path failures (*os.PathError); the walk goes on
	// with the rest of the tree, and the ancestors of a failed entry are
	// left in place without a further error.
	Errors []error
}

// Options tunes a walk. The zero value is ready to use.
//
// A walk is one goroutine and holds at most 16 directory descriptors
// whatever the depth of the tree: deeper, the descriptors of the
// directories nearest the top are closed and, when needed again, reopened
// through their child's "..", each reopened descriptor being checked to be
// the same directory (device, inode, mount) as before.
type Options struct {
	// InUse, when set, is asked about every directory of the tree that
	// holds an entry named InUseMarker, before anything in it is removed
	// or counted, with an open descriptor of that directory (the walk's
	// own, not to be closed or shared) and its display path. A non-empty
	// reason leaves the directory in place, unentered, with its
	// ancestors; it is listed in Result.InUse. Package gc keeps a live
	// VM's data directory nested in an orphan's tree this way.
	InUse       func(dirfd int, path string) (reason string)
	InUseMarker string

	// dirsOnly makes a walk skip the entries its listing says are not
	// directories (InUseAt).
	dirsOnly bool
	// mounts forces a mount-detection method; tests use it to exercise
	// each fallback on a kernel that offers the better ones.
	mounts mountMethod
	// beforeOpen, when set by a test, is called with a directory's
	// display path after its parent was listed and before the directory
	// is opened, so the test can swap it for a symlink.
	beforeOpen func(displayPath string)
	// peakFDs, when set by a test, receives the largest number of
	// directory descriptors the walk held open at once.
	peakFDs func(int)
}
