// SPDX-License-Identifier: Apache-2.0

// Command fakerunner stands in for go-microvm-runner in the gc tests: the
// tests build it under that name, so its executable base name matches, and
// it does nothing but wait to be killed.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	<-c
}
