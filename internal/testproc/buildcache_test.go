// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package testproc

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBuildShared: a second test process asking for the same build finds
// the first one's executable in the cache instead of linking its own.
func TestBuildShared(t *testing.T) {
	t.Parallel()
	if _, err := os.UserCacheDir(); err != nil {
		t.Skipf("no user cache directory, so no shared build: %v", err)
	}
	first, err := BuildRunner()
	if err != nil {
		t.Fatal(err)
	}
	// Forget it, as another test binary never knew it.
	buildMu.Lock()
	clear(built)
	buildMu.Unlock()
	again, err := BuildRunner()
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("second build at %s, first at %s; want the cached one", again, first)
	}
	fi, err := os.Stat(again)
	if err != nil || fi.Mode().Perm()&0o111 == 0 || filepath.Base(again) != RunnerName {
		t.Errorf("cached build %s: %v, %v; want an executable named %s", again, fi, err, RunnerName)
	}
}
