// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package fstree removes and measures directory trees relative to directory
// descriptors.
//
// Every system call in a walk names an entry relative to an open directory
// descriptor, so the length of a path never matters and a rename above the
// walk cannot redirect it.
// A symbolic link is never followed: it is unlinked (or measured) as a link,
// even when it was swapped in for a directory during the walk.
// A directory on another filesystem or another mount (a bind mount of the
// same filesystem included) is never entered: it is reported in
// Result.Mounts and left in place with its ancestors. Mounts are told apart
// by mount id where the kernel gives one (statx, else name_to_handle_at), so
// a btrfs subvolume on the same mount is an ordinary directory; else by
// st_dev when /proc/self/mountinfo shows the device mounted once; where
// nothing can tell, every directory below the top is left as a possible
// mount.
// A directory that Options.InUse calls in use (package gc: a live VM's data
// directory nested in the tree) is left in place the same way, in
// Result.InUse.
// An entry that someone else removes during the walk is simply gone.
// A directory whose permissions forbid the removal of its entries is made
// accessible to its owner first (RemoveAt only; SizeAt changes nothing).
// A file with several hard links in the tree is counted once in
// Result.Bytes.
// A walk holds a bounded number of descriptors whatever the depth of the
// tree (see Options).
// When the context ends, the walk stops between two entries and returns
// ErrBudget: what is left is an intact, smaller tree that can be removed
// later.
package fstree
