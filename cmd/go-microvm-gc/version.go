// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at link time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// versionString is the --version line: the version (linked, else the
// module version `go install ...@version` recorded), then what the Go
// toolchain recorded about the build (module, VCS revision).
func versionString() string {
	info, _ := debug.ReadBuildInfo()
	return formatVersion(version, info)
}

// formatVersion renders the --version line from the linked version and the
// build info (nil when unavailable).
func formatVersion(linked string, info *debug.BuildInfo) string {
	parts := []string{}
	v := linked
	if info != nil {
		if mv := info.Main.Version; v == "dev" && mv != "" && mv != "(devel)" {
			v = mv
		}
		if mv := info.Main.Version; mv != "" && mv != "(devel)" {
			parts = append(parts, info.Main.Path+" "+mv)
		}
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if modified == "true" {
				rev += "-dirty"
			}
			parts = append(parts, "revision "+rev)
		}
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("go-microvm-gc %s (%s)", v, strings.Join(parts, ", "))
}
