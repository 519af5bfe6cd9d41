# SPDX-License-Identifier: Apache-2.0
#
# Targets: build test lint cross demo bench fuzz stress upstream-check ci
# (see README.md).

GO ?= go

# golangci-lint at a pinned version, built from source into ./bin/tools by
# `make lint` when missing (CI starts from a fresh clone). Point
# GOLANGCI_LINT at a binary of the same version to skip the build.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT_DIR := $(CURDIR)/bin/tools/golangci-lint-$(GOLANGCI_LINT_VERSION)
GOLANGCI_LINT ?= $(GOLANGCI_LINT_DIR)/golangci-lint

# Bounds `go test`; CI must finish well inside 15 minutes.
TEST_TIMEOUT ?= 10m

# Per benchmark; benchmarks print their ratios against the baseline measured
# in the same run.
BENCHTIME ?= 1s
BENCH_DIRS ?= 100000
BENCH_MILLION ?=
BENCH_TIMEOUT ?= 60m

# Per fuzz target. The targets are discovered: every `func FuzzXxx` in a
# _test.go file, listed per package with `go test -list`.
FUZZTIME ?= 1m
FUZZ_PKGS ?= $(shell grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u)

# Knobs of the stress tests (package internal/stress): the full run.
STRESS_KILLS ?= 300
STRESS_DURATION ?= 60s
STRESS_FILES ?= 1500
STRESS_TIMEOUT ?= 30m
# The package tests that `go test ./...` runs small (testproc.Size) and
# `make stress` runs again at full size.
FULL_SIZE_TESTS ?= TestCrashSafety|TestConcurrentDeleterNotError|TestRemoveAtDeeperThanPathMax|TestRemoveAtDeepUnderLowFileLimit|TestRemoveAtConcurrentDeleter|TestInterrupt

# The packages that build for Windows (make cross): state keeps released
# go-microvm's Windows build, its lease calls failing as unsupported; gc,
# runner and the command are Unix only.
WINDOWS_PKGS ?= ./state/ ./internal/datadir/ ./internal/procinfo/ ./internal/sysat/

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build test lint cross demo bench fuzz stress upstream-check ci

all: build

## build: compile everything; the commands land in ./bin
build:
	$(GO) build ./...
	@mkdir -p bin
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...

## test: the test suite, with the race detector
test:
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

## lint: SPDX headers, platform files (x/sys/unix only behind a unix
## build constraint), gofmt (fails on any unformatted file), go vet,
## golangci-lint (.golangci.yml; installed at the pinned version if missing)
lint: $(GOLANGCI_LINT)
	bash scripts/spdx.sh
	GO=$(GO) bash scripts/platform.sh
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt would change:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT_DIR)/golangci-lint:
	GOBIN=$(GOLANGCI_LINT_DIR) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

## cross: build and vet (tests included), without cgo, for macOS (amd64
## and arm64) and, for Windows, the packages that build there
cross:
	CGO_ENABLED=0 GOOS=darwin GOARCH=amd64 $(GO) build ./...
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) build ./...
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) build $(WINDOWS_PKGS)
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) vet $(WINDOWS_PKGS)

## demo: a sandbox with real processes: list, collect, list again, checked
demo:
	$(GO) run ./internal/cmd/go-microvm-gc-demo

## bench: every benchmark once; each prints its ratio against a baseline
## measured in the same run. The scan benchmarks run over BENCH_DIRS data
## directories; BENCH_MILLION=1 adds the 1,000,000-directory memory case.
bench:
	GC_BENCH_DIRS=$(BENCH_DIRS) $(if $(filter 1,$(BENCH_MILLION)),GO_MICROVM_BENCH_MILLION=1) \
		$(GO) test -run='^$$' -bench=. -benchtime=$(BENCHTIME) -timeout $(BENCH_TIMEOUT) ./...

## fuzz: every fuzz target for FUZZTIME each (make fuzz FUZZTIME=10s)
fuzz:
	@set -e; for pkg in $(FUZZ_PKGS); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== fuzz $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run='^$$' -fuzz="^$$target\$$" -fuzztime=$(FUZZTIME) $$pkg; \
		done; \
	done

## stress: the fault-injection, concurrency and load tests of
## internal/stress at full size (`make test` runs them short), and the
## package tests sized down for `make test` at full size
stress:
	STRESS_KILLS=$(STRESS_KILLS) STRESS_DURATION=$(STRESS_DURATION) STRESS_FILES=$(STRESS_FILES) \
		$(if $(STRESS_SEED),STRESS_SEED=$(STRESS_SEED)) \
		$(GO) test -race -count=1 -timeout $(STRESS_TIMEOUT) -v ./internal/stress/...
	GO_MICROVM_TEST_FULL=1 $(GO) test -race -count=1 -timeout $(STRESS_TIMEOUT) \
		-run '^($(FULL_SIZE_TESTS))$$' ./gc/ ./internal/fstree/ ./cmd/go-microvm-gc/

## upstream-check: drop state, runner and gc into a released go-microvm
## tree, compare the APIs (apidiff) and run its vet and tests there
## (make upstream-check UPSTREAM=path/to/go-microvm); skipped with a
## message without UPSTREAM. Trees: v0.0.32 and earlier from
## github.com/stacklok/go-microvm, v0.0.33-v0.0.36 from the tags of the
## fork github.com/echidnasys/go-microvm, e.g.
##   git clone --depth 1 --branch v0.0.36 https://github.com/echidnasys/go-microvm
## BROODBOX=path/to/brood-box also builds brood-box against the tree and
## runs its internal/infra/vm tests.
upstream-check:
	GO=$(GO) BROODBOX="$(BROODBOX)" bash scripts/upstream-check.sh "$(UPSTREAM)"

## ci: what CI runs (.ci/run)
ci:
	bash .ci/run
