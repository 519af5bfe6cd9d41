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
	v, parts := linked, []string{}
	if info != nil {
		if mv := info.Main.Version; mv != "" && mv != "(devel)" {
			if v == "dev" {
				v = mv
			}
			parts = append(parts, info.Main.Path+" "+mv)
		}
		vcs := map[string]string{}
		for _, s := range info.Settings {
			vcs[s.Key] = s.Value
		}
		if rev := vcs["vcs.revision"]; rev != "" {
			rev = rev[:min(len(rev), 12)]
			if vcs["vcs.modified"] == "true" {
				rev += "-dirty"
			}
			parts = append(parts, "revision "+rev)
		}
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("go-microvm-gc %s (%s)", v, strings.Join(parts, ", "))
}
