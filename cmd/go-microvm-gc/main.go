// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/term"
)

// Exit codes, as the package doc and the README document them; a signal
// exits 128+signal, as a shell does.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	exitBusy  = 75 // EX_TEMPFAIL: try again later
)

func main() { os.Exit(mainCode()) }

// mainCode is the whole process: SIGINT or SIGTERM cancels the work in
// progress; a second one kills at once.
func mainCode() int {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		signal.Stop(sigs)
		sig, _ := s.(syscall.Signal)
		cancel(&interruptError{sig: sig})
	}()
	return newApp(ctx, os.Stdin, os.Stdout, os.Stderr).execute(os.Args[1:])
}

// interruptError is the context's cause when a signal stopped the command.
type interruptError struct{ sig syscall.Signal }

func (e *interruptError) Error() string { return "interrupted by " + e.sig.String() }

// interrupted reports whether ctx ended because of a signal, and the exit
// code that says so.
func interrupted(ctx context.Context) (code int, ok bool) {
	var ie *interruptError
	if !errors.As(context.Cause(ctx), &ie) {
		return 0, false
	}
	return 128 + int(ie.sig), true
}

// app is one run of the command: its streams and what is known about them.
type app struct {
	ctx    context.Context
	stdin  io.Reader
	stdout *outWriter
	stderr io.Writer

	// stdinTTY and stderrTTY: a person may be watching and answering.
	stdinTTY, stderrTTY bool
	// progressAfter is how long a collection runs before progress shows.
	progressAfter time.Duration
}

// newApp sets up a run on the given streams.
func newApp(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) *app {
	return &app{
		ctx:           ctx,
		stdin:         stdin,
		stdout:        &outWriter{w: stdout},
		stderr:        stderr,
		stdinTTY:      isTerminal(stdin),
		stderrTTY:     isTerminal(stderr),
		progressAfter: time.Second,
	}
}

// outWriter remembers the first failed write, so that output that did not
// reach its reader (a full disk, a closed pipe) fails the run.
type outWriter struct {
	w   io.Writer
	err error
}

func (o *outWriter) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	n, err := o.w.Write(p)
	if err != nil {
		o.err = err
	}
	return n, err
}

// printf and println print to the run's output; a failed write is kept
// in o.err, which fails the run at its end.
func (o *outWriter) printf(format string, a ...any) { _, _ = fmt.Fprintf(o, format, a...) }

func (o *outWriter) println(a ...any) { _, _ = fmt.Fprintln(o, a...) }

// eprintf prints a diagnostic to stderr; a failed write there has nowhere
// to be reported.
func eprintf(w io.Writer, format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }

// isTerminal reports whether v is an *os.File on a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger logs to stderr: errors only by default, since every warning of
// a sweep is also in its report, and everything with --verbose.
func newLogger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelError
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// exitCodeError ends a command with code; what it had to say is already
// printed.
type exitCodeError struct{ code int }

func (e *exitCodeError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// usagef is a wrong invocation: execute prints it in one line with a
// pointer to --help, and exits 2.
func usagef(format string, args ...any) error { return fmt.Errorf(format, args...) }
