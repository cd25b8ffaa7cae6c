# Entry points: `make pipeline` runs the data pipeline, `make test` the tests.
include pipeline.mk

.PHONY: help test check fmt clippy bench bench-scale bench-serve bench-db soak

## help: these lines
help:
	@awk '!/^#/ { exit } { print substr($$0, 2) }' pipeline.mk
	@echo
	@awk '/^## [a-z][a-z /-]*: /{ print "  " substr($$0, 4); next } /^## /{ print "      " substr($$0, 4) }' pipeline.mk Makefile

## test: the whole suite, against a throwaway PostgreSQL it starts (without one installed, the database tests fail)
test: build
	tests/with-postgres.sh $(CARGO) test --$(PROFILE) --workspace

## check: formatting, lints, unused dependencies, then the tests
check:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --$(PROFILE) --workspace --all-targets -- -D warnings
	@command -v cargo-machete > /dev/null || { echo "make check: needs cargo-machete (cargo install cargo-machete --locked)" >&2; exit 1; }
	$(CARGO) machete $$(dirname */Cargo.toml | grep -vx workspace-hack)
	$(MAKE) --no-print-directory test

fmt:
	$(CARGO) fmt --all

## bench: speed and accuracy benchmarks (not part of the tests): bench/results.md
bench: build
	bench/run.sh
	bench/scale.sh
	bench/with-scale.sh
	bench/extract-db.sh
	bench/serve.sh

## bench-scale: every stage's time and peak memory at 1M, 10M and 30M rows per table (part of bench)
bench-scale: build
	bench/scale.sh

## bench-db: extract --source postgres against psql \copy of the same rows (part of bench)
bench-db: build
	bench/extract-db.sh

## bench-serve: serve against FastAPI + uvicorn under wrk and hey (part of bench)
bench-serve: build
	bench/serve.sh

## soak: the fault-injection tests with many more random kills per stage
soak: build
	KILLS=$(or $(KILLS),200) tests/with-postgres.sh $(CARGO) test --$(PROFILE) --workspace -- faults:: --test-threads=1
