#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# upstream-check: proves that this module's state, runner and gc drop into a
# released go-microvm tree. It copies the released tree (UPSTREAM, or $1) to
# a temporary directory, replaces its state/ and runner/ with ours (keeping
# its runner/cmd), adds gc/ and the internal packages ours import, resolves
# the dependencies through the Go module proxy, then runs go vet on every
# package that does not need libkrun (cgo), and the released tests of the
# top-level package, state/ (the released state_test.go against our
# package), hypervisor/..., rootfs/ and preflight/, plus this repository's
# scripts/testdata/upstream/*_test.go, copied into the released tree. It prints the
# pass count and exits non-zero on any failure. Nothing of the released tree
# is kept.
set -euo pipefail

upstream=${1:-${UPSTREAM:-}}
if [ -z "$upstream" ]; then
	echo "upstream-check: skipped: set UPSTREAM to a released go-microvm checkout (make upstream-check UPSTREAM=path)"
	exit 0
fi
if [ ! -f "$upstream/go.mod" ] || [ ! -d "$upstream/state" ] || [ ! -d "$upstream/runner/cmd" ]; then
	echo "upstream-check: $upstream is not a go-microvm tree (no go.mod, state/ or runner/cmd/)" >&2
	exit 2
fi
ours=$(cd "$(dirname "$0")/.." && pwd)
upstream=$(cd "$upstream" && pwd)
GO=${GO:-go}

work=$(mktemp -d "${TMPDIR:-/tmp}/upstream-check.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
tree=$work/go-microvm
echo "== copy $upstream to $tree"
mkdir -p "$tree"
(cd "$upstream" && tar --exclude=./.git -cf - .) | (cd "$tree" && tar -xf -)

# copy_pkg SRC DST: the package's Go sources without our tests, and its
# testdata only when asked (tests of ours are not run here).
copy_pkg() {
	mkdir -p "$2"
	find "$1" -maxdepth 1 -type f -name '*.go' ! -name '*_test.go' -exec cp {} "$2"/ \;
}

echo "== replace state/ (keeping the released state_test.go)"
mv "$tree/state/state_test.go" "$work/state_test.go"
rm -rf "$tree/state"
copy_pkg "$ours/state" "$tree/state"
mv "$work/state_test.go" "$tree/state/state_test.go"

echo "== replace runner/ (keeping the released runner/cmd)"
find "$tree/runner" -maxdepth 1 -type f -delete
copy_pkg "$ours/runner" "$tree/runner"

echo "== add gc/ and internal packages"
copy_pkg "$ours/gc" "$tree/gc"
# Every internal package but the stress tests, with its subdirectories
# (internal/cmd/go-microvm-runner is the stand-in runner the tests below
# start), without our tests.
for dir in "$ours"/internal/*/; do
	name=$(basename "$dir")
	case $name in stress) continue ;; esac
	if [ -e "$tree/internal/$name" ]; then
		echo "upstream-check: internal/$name exists in the released tree" >&2
		exit 2
	fi
	mkdir -p "$tree/internal/$name"
	(cd "$dir" && find . -type f -name '*.go' ! -name '*_test.go' -print0 | tar --null -T - -cf -) |
		(cd "$tree/internal/$name" && tar -xf -)
done

echo "== add scripts/testdata/upstream tests"
cp "$ours"/scripts/testdata/upstream/*_test.go "$tree"/

echo "== resolve dependencies (Go module proxy)"
cd "$tree"
# Ours may need newer versions of shared dependencies; go mod tidy raises
# them to what the module graph needs and adds what is missing.
"$GO" mod edit -require="golang.org/x/sys@$(cd "$ours" && "$GO" list -m -f '{{.Version}}' golang.org/x/sys)"
"$GO" mod tidy

echo "== go vet (packages that do not need libkrun)"
pkgs=()
while read -r pkg deps; do
	case " $deps " in
	*" github.com/stacklok/go-microvm/krun "*) echo "   skip $pkg (needs libkrun)" ;;
	*) pkgs+=("$pkg") ;;
	esac
done < <("$GO" list -deps=false -f '{{.ImportPath}} {{join .Deps " "}}' ./...)
CGO_ENABLED=0 "$GO" vet "${pkgs[@]}"
echo "   vet clean: ${#pkgs[@]} packages"

echo "== go test"
out=$work/test.out
status=0
"$GO" test -count=1 -v . ./state/ ./hypervisor/... ./rootfs/ ./preflight/ >"$out" 2>&1 || status=$?
pass=$(grep -c -- '--- PASS:' "$out" || true)
fail=$(grep -c -- '--- FAIL:' "$out" || true)
skip=$(grep -c -- '--- SKIP:' "$out" || true)
grep -E '^(ok|FAIL|---|\?) ' "$out" | grep -Ev '^--- (PASS|SKIP)' || true
# The results of this repository's tests run in the released tree.
for name in $(sed -n 's/^func \(Test[A-Za-z0-9_]*\)(.*/\1/p' "$ours"/scripts/testdata/upstream/*_test.go); do
	grep -E -- "--- (PASS|FAIL|SKIP): $name " "$out" || { echo "--- MISSING: $name"; status=1; }
done
if [ "$status" -ne 0 ] || [ "$fail" -ne 0 ]; then
	echo "-- output of the failures:"
	grep -Ev -- '^=== (RUN|PAUSE|CONT|NAME)|^ *--- (PASS|SKIP):' "$out" | tail -200
fi
echo "upstream-check: $pass passed, $fail failed, $skip skipped (tests and subtests)"
if [ "$status" -ne 0 ] || [ "$fail" -ne 0 ]; then
	exit 1
fi
