# berth — build, test, demo, bench. `make test` is what CI runs (.ci/run).
SHELL   := /bin/bash
GO      ?= go
BIN     := bin/berth
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X berth.dev/berth/cmd/berth/internal/cli.Version=$(VERSION)
# Static binaries: the container init and exec helpers are this binary run
# inside a container's mount namespace, where the host's libc is not.
export CGO_ENABLED ?= 0
export PATH := /usr/local/go/bin:$(PATH)

# As root, tests that need root must run: RequireRoot fails instead of skipping.
ifeq ($(shell id -u),0)
export BERTH_TEST_ROOT ?= 1
endif

# Packages with no root-only code, run under the race detector (needs cgo).
# reconciler/e2e drives the real engine as root and is left out.
RACE_PKGS := ./spec/... ./schemas/... ./engine/state/... ./reconciler ./reconciler/plan/... ./reconciler/render/... ./engine/enginetest/... ./engine/volume/... ./engine/registry/... ./engine/reexec/...
FUZZTIME  ?= 10s

.PHONY: all build test deps lint verify unit race fuzz conformance bench demo schemas clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/berth

## test: everything CI needs, from a fresh machine.
test: deps lint verify unit race fuzz conformance

deps:
	@bash .ci/deps

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files -o --exclude-standard '*.go' 2>/dev/null)); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

verify:
	$(GO) test -count=1 -run 'TestSchemaUpToDate' ./schemas/

unit: build
	$(GO) test -count=1 -timeout 30m ./...

race:
	CGO_ENABLED=1 $(GO) test -race -count=1 $(RACE_PKGS)

## conformance: the OCI distribution-spec conformance program (default
## configuration, every API on) against `berth registry serve` on 127.0.0.1.
conformance: build
	BERTH=$(BIN) GO=$(GO) bash .ci/conformance

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./spec/

schemas:
	$(GO) test -count=1 -run 'TestSchemaUpToDate' ./schemas/ -update

bench: build
	$(GO) run ./bench

demo: build
	@bash examples/demo.sh

clean:
	rm -rf bin
