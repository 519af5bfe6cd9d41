// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

// SetFastDecode switches the hand-written decoder on or off, for the
// benchmarks of package state_test.
func SetFastDecode(on bool) { useFastDecode = on }
