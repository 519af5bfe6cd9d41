// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build !unix

package main

import "errors"

// openNoWait: outside Unix there are no such flags.
const openNoWait = 0

// lockAccess: outside Unix the collector cannot take a root lock at all
// (gc.Collect is Unix only), which is what the dry run's note then says.
func lockAccess(string) error { return errors.ErrUnsupported }
