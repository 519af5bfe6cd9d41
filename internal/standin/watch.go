// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package standin

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// watcher proves that no file of a live VM is lost: it remembers every
// regular file under the root with its size and reports any loss or
// change.
type watcher struct {
	report   string
	files    map[string]int64
	order    []string
	reported map[string]string // path → last problem reported
}

func newWatcher(root, report string) (*watcher, error) {
	w := &watcher{report: report, files: make(map[string]int64), reported: make(map[string]string)}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		w.files[path] = fi.Size()
		w.order = append(w.order, path)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", root, err)
	}
	sort.Strings(w.order)
	return w, nil
}

func (w *watcher) loop(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		w.check()
	}
}

// check reports each new problem once; a file that recovers and breaks
// again is reported again.
func (w *watcher) check() {
	for _, path := range w.order {
		problem := ""
		fi, err := os.Lstat(path)
		switch {
		case err != nil:
			problem = fmt.Sprintf("lost %s: %v", path, err)
		case !fi.Mode().IsRegular():
			problem = fmt.Sprintf("changed %s: now %v", path, fi.Mode().Type())
		case fi.Size() != w.files[path]:
			problem = fmt.Sprintf("changed %s: size %d, was %d", path, fi.Size(), w.files[path])
		}
		if problem != "" && w.reported[path] != problem {
			appendLine(w.report, problem)
		}
		w.reported[path] = problem
	}
}
