// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckRootSafeOtherUsers: the home directory of every user that
// /etc/passwd lists, and each directory above it, is refused as a root,
// not only the invoking user's; a directory below one is fine.
func TestCheckRootSafeOtherUsers(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Skipf("no /etc/passwd: %v", err)
	}
	home := os.Getenv("HOME")
	checked := 0
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 6 || !filepath.IsAbs(f[5]) || f[5] == "/" || f[5] == home {
			continue
		}
		for dir := f[5]; dir != "/"; dir = filepath.Dir(dir) {
			if err := checkRootSafe(dir); err == nil {
				t.Errorf("checkRootSafe(%q) = nil, want a refusal: it holds %s's home %s", dir, f[0], f[5])
			}
		}
		below := filepath.Join(f[5], ".config", "go-microvm")
		if err := checkRootSafe(below); err != nil {
			t.Errorf("checkRootSafe(%q) = %v, want nil: it is below the home directory", below, err)
		}
		checked++
	}
	if checked == 0 {
		t.Skip("/etc/passwd lists no other user with a home directory")
	}
}
