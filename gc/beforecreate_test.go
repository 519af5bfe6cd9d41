// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
)

// BeforeCreate reclaims the orphans under root, skips a root another
// collector holds, does nothing for a missing root, and fails only when its
// context is done.
func TestBeforeCreate(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	orphan := filepath.Join(root, "crashed")
	makeVM(t, orphan, orphanState())
	var logs bytes.Buffer
	check := BeforeCreate(root, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	// Another collector holds the root: skipped at once, nothing touched.
	h := startHelper(t, "rootlock", root, "ready")
	if err := check(t.Context()); err != nil {
		t.Fatalf("BeforeCreate with the root lock held: %v, want nil", err)
	}
	mustExist(t, orphan)
	h.Kill()

	if err := check(t.Context()); err != nil {
		t.Fatalf("BeforeCreate: %v", err)
	}
	mustNotExist(t, orphan)
	if !strings.Contains(logs.String(), "reclaimed=1") {
		t.Errorf("log does not say what was reclaimed:\n%s", logs.String())
	}

	if err := BeforeCreate(filepath.Join(root, "missing"))(t.Context()); err != nil {
		t.Errorf("BeforeCreate on a missing root: %v, want nil", err)
	}

	makeVM(t, orphan, orphanState())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := check(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("BeforeCreate with a cancelled context: %v, want Canceled", err)
	}
}
