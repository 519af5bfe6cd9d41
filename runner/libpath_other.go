// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !linux && !darwin

package runner

// libPathVar is the dynamic loader's search path variable.
const libPathVar = "LD_LIBRARY_PATH"
