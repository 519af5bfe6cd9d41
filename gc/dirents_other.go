// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix && !linux

package gc

type dirReader = plainReader

func newDirReader(fd int, _ bool) (*dirReader, error) { return newPlainReader(fd) }
