#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# upstream-check: proves that this module's state, runner and gc drop into a
# released go-microvm tree. It copies the released tree (UPSTREAM, or $1) to
# a temporary directory, replaces its state/ and runner/ with ours (keeping
# its runner/cmd), adds gc/ and the internal packages ours import, resolves
# the dependencies through the Go module proxy, then:
#   - apidiff (golang.org/x/exp/cmd/apidiff, from the module proxy) compares
#     the released state and runner APIs with ours, for linux and darwin:
#     any incompatible change (a name, a field, a type, comparability) fails;
#   - go vet on every package that does not need libkrun (cgo);
#   - the released tests of the top-level package, state/ and runner/ (their
#     state_test.go and config_test.go against our packages; see
#     released_runner_tests), hypervisor/..., rootfs/ and preflight/, plus
#     this repository's scripts/testdata/upstream/*_test.go, copied into the
#     released tree.
# With BROODBOX set to a brood-box checkout, it then builds that copy of
# brood-box against the tree (a replace of github.com/stacklok/go-microvm)
# and runs its internal/infra/vm tests. It prints the pass count and exits
# non-zero on any failure. Nothing of the released tree is kept.
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

# The released API of state and runner, recorded before ours replace them.
apidiff_version=v0.0.0-20261121134650-e1094eeca1b5
echo "== record the released state and runner APIs (apidiff $apidiff_version)"
GOBIN=$work/bin "$GO" install "golang.org/x/exp/cmd/apidiff@$apidiff_version"
for goos in linux darwin; do
	for pkg in state runner; do
		(cd "$tree" && GOOS=$goos CGO_ENABLED=0 GOFLAGS=-mod=mod "$work/bin/apidiff" -w "$work/$goos-$pkg.api" "./$pkg")
	done
done

echo "== replace state/ (keeping the released state_test.go)"
mv "$tree/state/state_test.go" "$work/state_test.go"
rm -rf "$tree/state"
copy_pkg "$ours/state" "$tree/state"
mv "$work/state_test.go" "$tree/state/state_test.go"

# released_runner_tests: the released runner tests kept, those that test
# the API (config_test.go: the JSON of Config, VirtioFSMount, VsockPort).
# The others test internals that ours implements differently and do not
# compile against it: spawn_test.go (runnerFinder, Process's pid and
# injected deps, killTarget, libPathEnvVar, isNoSuchProcess),
# process_linux_test.go (isExpectedProcess) and userns_linux_test.go
# (applyUserNamespace); ours covers the same behaviour in its own tests.
released_runner_tests="config_test.go"
echo "== replace runner/ (keeping the released runner/cmd and $released_runner_tests)"
mkdir "$work/runner_tests"
for name in $released_runner_tests; do
	mv "$tree/runner/$name" "$work/runner_tests/"
done
find "$tree/runner" -maxdepth 1 -type f -delete
copy_pkg "$ours/runner" "$tree/runner"
mv "$work/runner_tests"/* "$tree/runner/"

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

echo "== apidiff: released state and runner APIs against ours"
for goos in linux darwin; do
	for pkg in state runner; do
		diffs=$(GOOS=$goos CGO_ENABLED=0 "$work/bin/apidiff" -incompatible "$work/$goos-$pkg.api" "./$pkg")
		if [ -n "$diffs" ]; then
			echo "upstream-check: $pkg ($goos) is incompatible with the released API:" >&2
			echo "$diffs" >&2
			exit 1
		fi
	done
done
echo "   compatible: state, runner (linux, darwin)"

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
"$GO" test -count=1 -v . ./state/ ./runner/ ./hypervisor/... ./rootfs/ ./preflight/ >"$out" 2>&1 || status=$?
pass=$(grep -c -- '--- PASS:' "$out" || true)
fail=$(grep -c -- '--- FAIL:' "$out" || true)
skip=$(grep -c -- '--- SKIP:' "$out" || true)
grep -E '^(ok|FAIL|---|\?) ' "$out" | grep -Ev '^--- (PASS|SKIP)' || true
# The results of this repository's tests run in the released tree.
for name in $(sed -n 's/^func \(Test[A-Za-z0-9_]*\)(t \*testing\.T).*/\1/p' "$ours"/scripts/testdata/upstream/*_test.go); do
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

# brood-box, an embedder, built against the tree in place of the release it
# pins; its dependencies come through the Go module proxy.
broodbox=${BROODBOX:-}
if [ -n "$broodbox" ]; then
	echo "== brood-box ($broodbox) against the tree"
	bb=$work/brood-box
	mkdir -p "$bb"
	(cd "$broodbox" && tar --exclude=./.git -cf - .) | (cd "$bb" && tar -xf -)
	cd "$bb"
	"$GO" mod edit -replace="github.com/stacklok/go-microvm=$tree"
	# The proxy does not serve every dependency of brood-box (toolhive's
	# modules): the packages that need one are skipped, by name.
	bbpkgs=()
	while read -r pkg deperr; do
		if [ -z "$deperr" ]; then
			bbpkgs+=("$pkg")
			continue
		fi
		echo "   skip $pkg: $(GOFLAGS=-mod=mod "$GO" list -e -f '{{range .DepsErrors}}{{.Err}}{{end}}' "$pkg" | head -1)"
		case $pkg in */internal/infra/vm | */internal/infra/vm/*) echo "upstream-check: brood-box's $pkg does not load" >&2; exit 1 ;; esac
	done < <(GOFLAGS=-mod=mod "$GO" list -e -f '{{.ImportPath}} {{if .DepsErrors}}unavailable{{end}}' ./...)
	GOFLAGS=-mod=mod "$GO" build "${bbpkgs[@]}"
	echo "   built: ${#bbpkgs[@]} packages"
	GOFLAGS=-mod=mod "$GO" test -count=1 ./internal/infra/vm/...
	echo "upstream-check: brood-box: ${#bbpkgs[@]} packages build, internal/infra/vm tests pass"
fi
