// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package runner

// libPathVar is the dynamic loader's search path variable.
const libPathVar = "DYLD_LIBRARY_PATH"
