// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stacklok/go-microvm/internal/testproc"
)

// collectPaused collects root, stopping once it holds the orphan pause
// locked: it prints "paused" and goes on when a line arrives on stdin.
// At the end it prints "report" and the report as JSON.
func collectPaused(root, pause string) int {
	in := bufio.NewReader(os.Stdin)
	rep, err := Collect(root, withHooks(hooks{locked: func(path string) {
		if path == pause {
			testproc.Say("paused")
			_, _ = in.ReadString('\n')
		}
	}}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	data, err := json.Marshal(newHelperReport(rep))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	testproc.Say("report %s", data)
	return 0
}

// TestOverlappingRoots: a collector on r/g is stopped in the middle of its
// run, its trash made and its second orphan locked, while its trash is
// taken from under it: by a collector on r (which never touches a trash
// below its root), or by someone removing the empty trash directory. Its
// rename of rootfs-work then finds the trash gone, not rootfs-work:
// it reclaims in place, and no rootfs-work is left with nothing pointing
// at it.
func TestOverlappingRoots(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"outer collector", "trash removed"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			r := filepath.Join(t.TempDir(), "r")
			g := filepath.Join(r, "g")
			a, b := filepath.Join(g, "a"), filepath.Join(g, "b")
			makeVM(t, a, orphanState())
			makeVM(t, b, orphanState())
			// One worker: a is reclaimed (the trash made) before b.
			inner := testproc.Start(t, "collect-pause", []string{g}, "GC_TEST_PAUSE="+b, "GOMAXPROCS=1")
			inner.Expect("paused")
			mustNotExist(t, a)
			mustExist(t, filepath.Join(g, TrashName))

			if tc == "outer collector" {
				outer := collectAs(t, r, false, 0)
				if len(outer.Reclaimed) != 0 {
					t.Errorf("outer collector reclaimed %v; b is locked by the inner one", outer.Reclaimed)
				}
			} else if err := os.Remove(filepath.Join(g, TrashName)); err != nil {
				t.Fatal(err)
			}
			inner.Send("go on")
			var rep helperReport
			if err := json.Unmarshal([]byte(strings.TrimPrefix(inner.Expect("report "), "report ")), &rep); err != nil {
				t.Fatal(err)
			}
			inner.WaitOK()
			if len(rep.Reclaimed) != 2 || len(rep.Errors) != 0 {
				t.Errorf("inner collector: %+v; want a and b reclaimed", rep)
			}
			err := filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.Name() == rootfsWorkName {
					t.Errorf("left behind: %s", path)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			mustNotExist(t, b)
		})
	}
}
