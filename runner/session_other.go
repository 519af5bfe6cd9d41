// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !unix

package runner

import "errors"

// sessionID has no sessions to report outside Unix.
func sessionID(int) (int, error) { return 0, errors.ErrUnsupported }
