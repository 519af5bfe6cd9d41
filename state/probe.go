// SPDX-License-Identifier: Apache-2.0

//go:build unix

package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ProbeLock reports whether dataDir's state lock is held by someone right
// now. It opens the existing lock file read-only without following a
// symlink, tries a non-blocking exclusive flock and drops it at once: it
// creates nothing and works on a read-only filesystem. A missing lock file
// (or data directory) is "not held" with a nil error; any other failure is
// an error naming the path. For that instant the probe itself holds the
// lock, so a concurrent TryLoadAndLock can see ErrLocked.
func ProbeLock(dataDir string) (held bool, err error) {
	return probe(filepath.Join(dataDir, LockFileName), probeLockFlags)
}

// ProbeLease reports whether the lease on dataDir is held right now. It
// opens dataDir read-only without following a symlink, tries a
// non-blocking exclusive flock and drops it at once: it creates nothing and
// works on a read-only filesystem. A missing dataDir is "not held" with a
// nil error; any other failure (dataDir a symlink or not a directory, say)
// is an error naming the path. For that instant the probe itself holds the
// lease, so a concurrent TryLease can see ErrLocked.
func ProbeLease(dataDir string) (held bool, err error) {
	return probe(dataDir, dirFlags)
}

func probe(path string, flags int) (bool, error) {
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("probe lock: %w", err)
	}
	defer f.Close()
	ok, err := tryFlock(f)
	if err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: path, Err: err}
	}
	if !ok {
		return true, nil
	}
	if err := unlockFlock(f); err != nil {
		return false, &fs.PathError{Op: "probe lock", Path: path, Err: err}
	}
	return false, nil
}
