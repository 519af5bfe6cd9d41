// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// quote makes s safe to print on a terminal: s itself when every rune is
// printable, else Go's quoted form. A directory name is chosen by whoever
// made it, so a name with an escape sequence or a newline must not colour
// the screen or add a fake row to a table. JSON output stays exact.
func quote(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}
