#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Checks that every non-test .go file importing golang.org/x/sys/unix is
# built on Unix systems only: it carries a unix-family build constraint (a
# //go:build line such as `unix`, `linux` or `darwin || freebsd`, or a
# _linux.go, _darwin.go, ... file name), so that no file builds for a
# system without the calls it makes. The non-Unix side of such code lives
# in a file of its own (_other.go) that does not import unix.
#
# The constraint is judged as the go tool judges it: a file passes when
# `go list` leaves it out of the build for every non-Unix GOOS (windows,
# plan9, js, wasip1), wherever its //go:build line sits.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
pkg='"golang.org/x/sys/unix"'
# An import of pkg in either form, with or without a name:
#   import "golang.org/x/sys/unix"    or, in a block,    sys "golang.org/x/sys/unix"
import_re="^[[:space:]]*(import[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*[[:space:]]+|[._][[:space:]]+)?$pkg"

bad=()
for target in windows/amd64 plan9/amd64 js/wasm wasip1/wasm; do
	files=$(CGO_ENABLED=0 GOOS=${target%/*} GOARCH=${target#*/} $GO list -e \
		-f '{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}' ./...)
	while IFS= read -r f; do
		[ -n "$f" ] || continue
		if grep -Eq "$import_re" "$f"; then
			bad+=("${f#"$PWD"/}")
		fi
	done <<<"$files"
done

if [ ${#bad[@]} -gt 0 ]; then
	echo "imports $pkg without a unix-family build constraint (see scripts/platform.sh):"
	printf '  %s\n' "${bad[@]}" | sort -u
	exit 1
fi
