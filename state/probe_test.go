// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !aix

package state

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// listing records every entry under root with its mode, size and
// modification time, so that any creation or write shows up as a change.
func listing(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[path] = fmt.Sprintf("%v %v %d", fi.Mode(), fi.ModTime(), fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// probeTree lays out data directories in the states a collector meets and
// returns them.
func probeTree(t *testing.T, root string) []string {
	t.Helper()
	withLock := filepath.Join(root, "with-lock")
	noLock := filepath.Join(root, "no-lock")
	empty := filepath.Join(root, "empty")
	for _, d := range []string{withLock, noLock, empty} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(withLock, FileName), `{"version":1,"active":true,"pid":1}`)
	write(t, filepath.Join(withLock, LockFileName), "")
	write(t, filepath.Join(noLock, FileName), `{"version":1}`)
	return []string{withLock, noLock, empty, filepath.Join(root, "missing")}
}

func TestProbesCreateNothing(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dirs := probeTree(t, root)
	before := listing(t, root)
	for _, d := range dirs {
		if held, err := probeLock(d); err != nil || held {
			t.Errorf("probeLock(%s) = %v, %v; want free", d, held, err)
		}
		if held, err := ProbeLease(d); err != nil || held {
			t.Errorf("ProbeLease(%s) = %v, %v; want free", d, held, err)
		}
		if _, err := NewManager(d).Load(); err != nil {
			t.Errorf("Load(%s): %v", d, err)
		}
	}
	if after := listing(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("probes changed the tree:\nbefore %v\nafter  %v", before, after)
	}
}
