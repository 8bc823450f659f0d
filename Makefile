# ZEngine: the two commands are `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/zengine-target
# Test data (routing instances, receipts) lives in ../shared beside the checkout.
export ZENGINE_SHARED_DIR ?= $(abspath $(CURDIR)/../shared)
# Tesseract (receipt OCR) must not spawn OpenMP threads: the OCR pool gives the parallelism.
export OMP_THREAD_LIMIT ?= 1
CARGO ?= cargo

.PHONY: run test tools postgres console build lint deny fmt histories bench soak clean-data fuzz test-api-properties test-faults

## make run: install what is missing, build, start `zengine dev` (API :8080, Temporal UI :8233)
run: tools console
	$(CARGO) build --bin zengine
	$(CARGO_TARGET_DIR)/debug/zengine dev

## make test: install what is missing and run the whole suite against real parts
test: tools postgres console
	$(CARGO) test --workspace

## API property tests (schemathesis against /openapi.json of a running `zengine dev`) with
## PROPERTY_EXAMPLES examples per operation (default 100; `make test` runs it with 10)
PROPERTY_EXAMPLES ?= 100
test-api-properties: tools
	PROPERTY_EXAMPLES=$(PROPERTY_EXAMPLES) $(CARGO) test -p zengine --test e2e properties -- --nocapture

tools:
	@./scripts/install-tools.sh

postgres:
	@./scripts/ensure-postgres.sh

## Fault tests with long windows: a provider down for a full minute (make test runs 8 s), and
## the process, Temporal and database faults of tests/e2e/faults.rs (docs/reliability.md)
test-faults: tools postgres console
	ZENGINE_FAULT_OUTAGE_SECS=60 $(CARGO) test --workspace --test api -- channels::the_circuit_opens_during_an_outage --nocapture
	$(CARGO) test --workspace --test e2e -- faults:: sigterm a_worker_killed

## The operator console (console/ → console/dist, served at /console/)
console: tools
	@./scripts/build-console.sh

build: tools
	$(CARGO) build --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Dependency policy (deny.toml): licenses, bans, sources
deny:
	@./scripts/deny.sh

fmt:
	$(CARGO) fmt --all

## Record the workflow histories replayed by workflows/tests/replay.rs that have no file yet:
## every API test that calls histories::record writes its own (FILTER=payments:: for one file)
histories: tools postgres
	ZENGINE_RECORD_HISTORIES=1 $(CARGO) test --workspace --test api -- $(FILTER)

## Benchmarks (results go to docs/benchmarks.md by hand)
bench: tools
	$(CARGO) bench --bench webchat
	$(CARGO) bench --bench flows
	$(CARGO) bench --bench whatsapp
	$(CARGO) bench --bench throughput
	$(CARGO) bench -p zengine-ocr --bench ocr

## Soak: 10 minutes of mixed traffic, checks errors, lost messages and RSS growth (SOAK_SECONDS=600)
soak: tools
	$(CARGO) bench --bench soak

## Fuzz every parser target for FUZZ_SECONDS each (default 60; docs/fuzzing.md)
fuzz:
	./scripts/fuzz.sh

## Forget the local state of `zengine dev` (Temporal history and the SQLite database)
clean-data:
	rm -rf data
