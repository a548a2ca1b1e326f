# The verbs people type. Logic lives in cargo and the binaries; this file only names it.

CARGO ?= cargo
# A default env for `make image`/`make config`; override on the command line.
DOMAIN ?= ecs.example.org

.PHONY: all build test deps bench config image e2e fmt lint clean

all: build

## Install the Debian packages that builds and tests need (idempotent; needs root or sudo).
deps:
	./scripts/deps.sh

## Release build of ecs-build and ecs-agent.
build:
	$(CARGO) build --release --workspace

## The test command (README, .ci/run): unit, integration and end-to-end tests against the real tools.
test:
	$(CARGO) test --workspace --no-fail-fast

## Benchmarks: each prints a ratio against a baseline measured in the same run.
bench: build
	./scripts/bench.sh

## A fresh env.yml, seed ISO and paper backup for $(DOMAIN) under out/ (replaces an existing one).
config: build
	./target/release/ecs-build config new --domain $(DOMAIN) --out out/$(DOMAIN) --force

# The env.yml examples/machine.yml points at; made once, kept across image builds.
# (Built with the whole workspace: a `-p` build unifies features differently and recompiles.)
out/$(DOMAIN)/env.yml: | build
	./target/release/ecs-build config new --domain $(DOMAIN) --out out/$(DOMAIN)

## The main job: a bootable appliance image from examples/machine.yml (raw, qcow2, manifest, seed, packer).
image: build out/$(DOMAIN)/env.yml
	./target/release/ecs-build image --config examples/machine.yml

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf out
