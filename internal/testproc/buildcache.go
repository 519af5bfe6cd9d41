// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package testproc

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// errNoCache says there is no cache directory to build into.
var errNoCache = errors.New("no build cache directory")

// staleAfter is the age beyond which a cached executable, whose sources
// have most likely changed since, is removed on the next miss.
const staleAfter = 24 * time.Hour

// cachedBuild returns the executable of pkg named base from the cache,
// building it there on a miss. An entry is a directory named by the hash
// of the module's sources and build environment (sourceKey), pkg and
// base, holding only the executable; it is built in a temporary directory
// and renamed into place, so a process that finds the entry finds it
// whole, and processes that miss at once each build and all but one
// throw theirs away. An entry is never rewritten, so an executable
// another test binary is running is never replaced under it.
func cachedBuild(pkg, base string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", errNoCache
	}
	cache := filepath.Join(dir, "go-microvm-testbin")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return "", errNoCache
	}
	src, err := sourceKey()
	if err != nil {
		return "", errNoCache
	}
	h := sha256.Sum256([]byte(src + "\x00" + pkg + "\x00" + base))
	entry := filepath.Join(cache, hex.EncodeToString(h[:12]))
	exe := filepath.Join(entry, base)
	if _, err := os.Stat(exe); err == nil {
		return exe, nil
	}
	removeStale(cache)
	tmp, err := os.MkdirTemp(cache, "tmp-")
	if err != nil {
		return "", errNoCache
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if err := goBuild(pkg, filepath.Join(tmp, base)); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, entry); err != nil {
		// Another process renamed its build into place first.
		if _, serr := os.Stat(exe); serr == nil {
			return exe, nil
		}
		return "", fmt.Errorf("cache the build of %s: %w", pkg, err)
	}
	return exe, nil
}

// removeStale removes the cache's entries (and abandoned temporary
// directories) older than staleAfter.
func removeStale(cache string) {
	entries, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAfter {
			_ = os.RemoveAll(filepath.Join(cache, e.Name()))
		}
	}
}

// sourceKey hashes what an executable built from this module depends on:
// every .go file, go.mod and go.sum of the module (outside testdata and
// hidden directories), the Go version and the environment that changes a
// build. It reads the module found from the working directory up, which
// is the package's directory under go test.
var sourceKey = sync.OnceValues(hashModule)

func hashModule() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	// Writes to a hash never fail: their errors are dropped below.
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "%s\x00%s/%s\x00", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, v := range []string{"GOFLAGS", "GOOS", "GOARCH", "GOEXPERIMENT", "GOAMD64", "GOARM64", "GOTOOLCHAIN", "GOROOT"} {
		_, _ = fmt.Fprintf(h, "%s=%s\x00", v, os.Getenv(v))
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && skippedDir(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !sourceFile(d.Name()) {
			return nil
		}
		return hashFile(h, root, path)
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// moduleRoot is the nearest directory holding a go.mod, from the working
// directory up.
func moduleRoot() (string, error) {
	root, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			return root, nil
		}
		parent := filepath.Dir(root)
		if parent == root {
			return "", errors.New("no go.mod above the working directory")
		}
		root = parent
	}
}

// skippedDir reports whether the go command ignores a directory of this
// name when it builds: testdata, and names starting with "." or "_".
func skippedDir(name string) bool {
	return name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// sourceFile reports whether a file of this name can change a build.
func sourceFile(name string) bool {
	return strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum"
}

// hashFile writes path's name relative to root and its contents to h.
func hashFile(h io.Writer, root, path string) error {
	rel, _ := filepath.Rel(root, path)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, _ = fmt.Fprintf(h, "%s\x00", rel)
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	_, _ = h.Write([]byte{0})
	return nil
}
