// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Package hangtest proves in tests that a call does not hang: it runs the
// call in a goroutine and fails the test if it has not returned within a
// guard that is generous on purpose, so that a loaded machine never makes
// it fail. It measures nothing: tests check behaviour, never elapsed time.
package hangtest

import (
	"testing"
	"time"
)

// Within runs fn and returns its results, or fails t (t.Fatalf, naming
// what) when fn has not returned within limit. Each onHang function runs
// before the failure, to unblock fn (for example, by opening the FIFO it
// waits on) so that a hang found does not outlive the test.
func Within[T any](t testing.TB, limit time.Duration, what string, fn func() (T, error), onHang ...func()) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := fn()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(limit):
		for _, f := range onHang {
			f()
		}
		t.Fatalf("%s did not return within %v: it hangs", what, limit)
		panic("unreachable: Fatalf stops the test")
	}
}
