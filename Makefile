# Every entry point of ironlb. `make help` lists them.
#
# The lab targets need root (network namespaces) and the control plane that
# `make controlplane` builds from the Go module proxy into e2e/bin.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# The e2e suite runs under its own harness; extra arguments (a test name
# filter, --nocapture) go through E2E_ARGS, e.g. make e2e E2E_ARGS=api::
E2E_ARGS ?=

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: controlplane bins ## The main job: start the lab and walk the tutorial in it
	e2e/demo.sh

.PHONY: test
test: deps crds-check unit chart-rules images-test e2e ## Every test: generated files, unit and integration tests, the alerting rules, the images, the e2e suite

.PHONY: build
build: ## Build every crate (debug)
	$(CARGO) build --workspace --all-targets

.PHONY: unit
unit: ## Unit, property and integration tests (no lab needed)
	$(CARGO) test --workspace --exclude ironlb-e2e
	$(CARGO) test -p ironlb-e2e --bin ironlb-lab-kubelet
	$(CARGO) test -p ironlb-e2e --test e2e -- --exact docs::every_documented_command_is_run_by_a_test

.PHONY: bins
bins: ## Build the ironlb binaries the lab runs, and the `ironlb` CLI the e2e suite drives (debug)
	$(CARGO) build -p ironlb-operator -p ironlb-speaker -p ironlb-cli -p ironlb-e2e --bin ironlb-operator --bin ironlb-speaker --bin ironlb --bin ironlb-lab-kubelet

.PHONY: e2e
e2e: controlplane bins ## The end-to-end suite against the lab (starts it, or reuses a running one)
	$(CARGO) test -p ironlb-e2e --test e2e -- $(E2E_ARGS)

.PHONY: bench
bench: controlplane bins ## Benchmarks: allocator vs first-fit, 10,000 Services in the lab, the speakers on the wire, failover (figures: docs/benchmarks.md, chart: docs/failover.svg)
	$(CARGO) bench -p ironlb-operator --bench allocator
	$(CARGO) bench -p ironlb-e2e --bench operator
	$(CARGO) bench -p ironlb-e2e --bench speaker
	$(CARGO) bench -p ironlb-e2e --bench failover

FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: ## Fuzz the ARP/NDP frame parser for FUZZ_SECONDS (nightly + cargo-fuzz; not part of make test)
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p fuzz/corpus/parse_frame
	$(CARGO) +nightly fuzz run parse_frame fuzz/corpus/parse_frame fuzz/seeds/parse_frame -- -max_total_time=$(FUZZ_SECONDS)

.PHONY: images
images: ## Build the operator and speaker OCI images without a container engine (into target/images; docs/images.md)
	CARGO=$(CARGO) images/build.sh

.PHONY: images-test
images-test: images ## Inspect the images and run their entrypoints from the unpacked rootfs (root)
	images/test.sh

.PHONY: crds
crds: ## Regenerate charts/ironlb/crds and docs/reference.md from the Rust API types and the values schema
	$(CARGO) run --quiet -p ironlb-core --bin crdgen

.PHONY: crds-check
crds-check: ## Fail when charts/ironlb/crds or docs/reference.md is not what `make crds` would write
	$(CARGO) run --quiet -p ironlb-core --bin crdgen -- --check

.PHONY: chart-rules
chart-rules: controlplane ## promtool check and unit tests of the chart's alerting rules (builds promtool into e2e/bin once)
	charts/ironlb/tests/rules.sh

.PHONY: lint
lint: ## rustfmt check, clippy with warnings denied, shellcheck of the scripts
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	shellcheck -x --source-path=SCRIPTDIR .ci/run scripts/*.sh e2e/*.sh e2e/lab/*.sh e2e/lab/up.d/*.sh e2e/controlplane/*.sh charts/ironlb/tests/*.sh images/*.sh

.PHONY: fmt
fmt: ## Format the Rust code
	$(CARGO) fmt --all

.PHONY: controlplane
controlplane: ## Build kube-apiserver, kube-controller-manager, kubectl, etcd, helm into e2e/bin (no-op when current)
	e2e/controlplane/build.sh

.PHONY: lab-up
lab-up: controlplane bins ## Start the lab: control plane, node namespaces, chart (reuses a running lab)
	e2e/lab/up.sh

.PHONY: lab-down
lab-down: ## Remove every process, namespace and file the lab made (safe to run any time)
	e2e/lab/down.sh

.PHONY: lab-status
lab-status: ## Show what of the lab is running
	e2e/lab/status.sh

.PHONY: deps
deps: ## Install the Debian packages the lab and tests use (root)
	scripts/install-deps.sh
