// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"strings"
)

// confirm asks question on stderr and reads the answer from stdin: yes
// only for "y" or "yes". An interrupt while waiting ends the wait with the
// context's error.
func (a *app) confirm(question string) (bool, error) {
	eprintf(a.stderr, "%s [y/N] ", question)
	answer := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(a.stdin).ReadString('\n')
		answer <- line
	}()
	select {
	case line := <-answer:
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			return true, nil
		}
		return false, nil
	case <-a.ctx.Done():
		eprintf(a.stderr, "\n")
		return false, a.ctx.Err()
	}
}
