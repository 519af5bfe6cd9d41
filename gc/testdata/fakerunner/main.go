// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

// Command fakerunner stands in for go-microvm-runner in the gc tests: the
// tests build it under that name, so its executable base name matches, and
// it does nothing but wait to be killed. With FAKERUNNER_EXIT_LEADER=1 its
// main thread exits once it prints "ready", as a runner whose main thread
// called pthread_exit, and the process lives on in its other threads.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	if os.Getenv("FAKERUNNER_EXIT_LEADER") == "1" {
		go func() {
			<-c
			os.Exit(0)
		}()
		fmt.Println("ready")
		exitLeader()
	}
	<-c
}
