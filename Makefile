# The project's verbs. Each target installs what it needs on a fresh machine
# (Debian, Python 3.11): a virtual environment in .venv and helm binaries in .tools.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
TOOLS := .tools
# The helm versions, from their one pin (scripts/helm-pins.toml).
helm_version = $(shell sed -n '/^\[$(1)\]/,/^\[/s/^version = "\(.*\)"/\1/p' scripts/helm-pins.toml)
HELM3 := $(TOOLS)/helm-$(call helm_version,helm3)/helm
HELM4 := $(TOOLS)/helm-$(call helm_version,helm4)/helm
CHECKOV_VENV := .venv-checkov
AUDIT_VENV := .venv-audit
CHART := chart
BUILD := build

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export HELM3 HELM4

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# --- environment ---------------------------------------------------------------------------

# uv installs the environments: pip unpacks file by file on one core, a minute for the 2 GB of
# .venv. It is itself a pin of constraints.txt, installed by the venv's own pip. uv reads none of
# pip's configuration, so the sources and constraints pip has here are handed to it
# (scripts/uv_sources.py): a machine with a local torch build gets that build from either.
$(UV): constraints.txt
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt uv
	touch $@

UV_INSTALL = $(UV) pip install --quiet $$($(PY) -m scripts.uv_sources)

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml $(UV)
	@echo "==> installing $(VENV) (pinned; first run takes about a minute)"
	$(UV_INSTALL) --python $(PY) -r requirements.txt -c constraints.txt
	$(UV_INSTALL) --python $(PY) --no-deps --editable .
	@# Compiled on every core. A file in a newer Python's syntax (torch ships one for 3.12)
	@# stays uncompiled, as pip leaves it, so the exit code that reports it is not the step's.
	$(PY) -m compileall -qq -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') || true
	touch $@

$(HELM3) $(HELM4) &:
	$(PYTHON_BOOT) scripts/install_helm.py $(TOOLS)

$(CHECKOV_VENV)/.installed: $(UV)
	@echo "==> installing $(CHECKOV_VENV) (checkov pins its own dependencies, so it lives apart)"
	$(UV) venv --quiet --allow-existing --python $(PYTHON_BOOT) $(CHECKOV_VENV)
	$(UV_INSTALL) --python $(CHECKOV_VENV)/bin/python checkov==3.3.30
	touch $@

$(AUDIT_VENV)/.installed:
	@echo "==> creating $(AUDIT_VENV) (pip-audit pins its own dependencies, so it lives apart)"
	$(PYTHON_BOOT) -m venv $(AUDIT_VENV)
	$(AUDIT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check pip-audit==2.10.1
	touch $@

.PHONY: venv tools
venv: $(VENV)/.installed ## Create the pinned virtual environment
tools: $(HELM3) $(HELM4) $(CHECKOV_VENV)/.installed ## Install helm 3 and 4 and checkov

.PHONY: constraints
constraints: $(VENV)/.installed ## Regenerate constraints.txt from the environment
	{ echo '# Every version in the development environment, from `make constraints` (pip freeze).'; \
	  $(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt

# --- checks ----------------------------------------------------------------------------------

.PHONY: lint
lint: venv tools ## ruff, mypy, the import layers, generated files current, helm lint (Helm 3 and 4), yamllint on the rendered chart
	$(PY) -m scripts.generate --check
	ruff check .
	ruff format --check .
	mypy .
	lint-imports
	for helm in $(HELM3) $(HELM4); do \
	  $$helm lint --strict $(CHART) --set modelRepository=gs://bucket/models >/dev/null; \
	  for f in $(CHART)/ci/*-values.yaml; do $$helm lint --strict $(CHART) -f $$f >/dev/null; done; \
	done
	mkdir -p $(BUILD)/lint
	$(HELM4) template lint $(CHART) --set modelRepository=gs://bucket/models > $(BUILD)/lint/default.yaml
	yamllint -c .yamllint.yaml $(BUILD)/lint/default.yaml $(CHART)/values.yaml $(CHART)/triton-releases.yaml schema.yaml schema.form.yaml
	yamllint -c .yamllint.yaml deployer/rbac.yaml deployer/marketplace/test-schema.yaml security/*.yaml
	hadolint Dockerfile.deployer

# The Debian packages the tests run for real, listed once in scripts/debian-packages.txt.
DEBIAN_PACKAGES := $(shell sed -e 's/\#.*//' scripts/debian-packages.txt)

.PHONY: debian-packages
debian-packages: ## Debian's packages the tests run for real (etcd, prometheus ...), installed when missing
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "==> installing" $$missing "(apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The set-up steps run side by side (pip, apt-get and the helm wheels wait on different things);
# then lint and the test tiers start together: lint needs a core for a minute while the first
# tiers mostly wait on servers, and either failing fails the target.
.PHONY: test test-fast tiers
test: ## Set up, then lint and every test tier but gpu side by side (build/test/*.log)
	@$(MAKE) --no-print-directory -j4 venv tools debian-packages
	@$(MAKE) --no-print-directory -j2 lint tiers

tiers: venv tools ## Every test tier but gpu, side by side where safe (python -m tests)
	$(PY) -m tests

test-fast: venv tools ## The render tier alone (helm and pure Python): under a minute, for every edit
	$(PY) -m tests render

# --- release checks ------------------------------------------------------------------------
# They read PyPI and today's date, so they are not in `lint` or `test`: a new advisory or an
# old bulletin record would turn an unchanged tree red. Their offline parts run in `test` too.

.PHONY: audit audit-pins audit-python security-docs
audit: audit-pins audit-python ## Release checks: audit-pins, then audit-python

audit-pins: venv ## Default Triton vs NVIDIA's bulletins (record at most 31 days old), the docs' third-party manifests, SECURITY.md's images table
	$(PY) -m security audit

# --strict: a package pip-audit cannot look up fails the audit instead of passing unchecked.
audit-python: venv $(AUDIT_VENV)/.installed ## pip-audit over the Python packages the deployer image installs (resolved from PyPI as Dockerfile.deployer does)
	mkdir -p $(BUILD)/audit
	$(PY) -m security deployer-requirements > $(BUILD)/audit/deployer-requirements.txt
	$(AUDIT_VENV)/bin/pip-audit --requirement $(BUILD)/audit/deployer-requirements.txt \
	  --no-deps --disable-pip --strict --progress-spinner off

security-docs: venv ## Regenerate the images table of SECURITY.md from the pins
	$(PY) -m security images

# --- releases (docs/releasing.md) ----------------------------------------------------------
# The release's version is the chart's (chart/Chart.yaml); `make version VERSION=X.Y.Z` writes it
# in the other files that state it. A package is signed with a GnuPG key from a secret keyring in
# the legacy format helm reads (gpg --export-secret-keys KEY > secring.gpg).
SIGNING_KEY ?=
SIGNING_KEYRING ?= $(HOME)/.gnupg/secring.gpg
SIGNING_PASSPHRASE_FILE ?=
RELEASE_DIR ?= $(BUILD)/release
RELEASE_PY := $(PYTHON_BOOT) scripts/release.py
CHART_NAME = $(shell sed -n 's/^name: *//p' $(CHART)/Chart.yaml)
CHART_VERSION = $(shell $(RELEASE_PY) version)
PACKAGE = $(RELEASE_DIR)/$(CHART_NAME)-$(CHART_VERSION).tgz
# Where a release goes: the chart to oci://REGISTRY/charts, the images under REGISTRY.
CHART_REPOSITORY = oci://$(REGISTRY)/charts
# What a release runs before it publishes anything. pip-audit (in `make audit`) asks PyPI; a test
# of the release flow, offline, names a check of its own here.
RELEASE_AUDIT ?= $(MAKE) --no-print-directory audit
# How a release publishes its images (`make push`: the deployer, Triton and the tester
# republished); empty publishes the chart alone.
RELEASE_IMAGES ?= $(MAKE) --no-print-directory push REGISTRY=$(REGISTRY)
BASELINE_REF ?=

.PHONY: version package release upgrade-baseline
version: ## Print the release's version; VERSION=X.Y.Z writes it wherever it is stated and dates the CHANGELOG's Unreleased entry
	@$(RELEASE_PY) $(if $(VERSION),set-version $(VERSION),version)

package: $(HELM4) ## The signed chart package and its provenance file in build/release (SIGNING_KEY, SIGNING_KEYRING, SIGNING_PASSPHRASE_FILE)
	@test -n "$(SIGNING_KEY)" || { echo "error: set SIGNING_KEY to the release key's name, email or fingerprint and SIGNING_KEYRING to its secret keyring (docs/releasing.md)" >&2; exit 2; }
	@test -f "$(SIGNING_KEYRING)" || { echo "error: SIGNING_KEYRING=$(SIGNING_KEYRING) is not a file: export the key in the format helm reads, gpg --export-secret-keys KEY > secring.gpg" >&2; exit 2; }
	mkdir -p $(RELEASE_DIR)
	rm -f $(PACKAGE) $(PACKAGE).prov
	$(HELM4) lint --strict $(CHART) --set modelRepository=gs://bucket/models
	$(HELM4) package $(CHART) --destination $(RELEASE_DIR) --sign --key "$(SIGNING_KEY)" \
	  --keyring "$(SIGNING_KEYRING)" $(if $(SIGNING_PASSPHRASE_FILE),--passphrase-file "$(SIGNING_PASSPHRASE_FILE)") \
	  || { rm -f $(PACKAGE) $(PACKAGE).prov; exit 1; }
	$(HELM4) verify $(PACKAGE) --keyring "$(SIGNING_KEYRING)"
	@cd $(RELEASE_DIR) && sha256sum $(notdir $(PACKAGE)) $(notdir $(PACKAGE)).prov

release: $(HELM4) ## Publish VERSION to REGISTRY: version checks, make audit, package and sign, push the images, then the chart; nothing is published when a check fails
	@test -n "$(VERSION)" || { echo "error: set VERSION=X.Y.Z, the version to release (chart/Chart.yaml states $(CHART_VERSION))" >&2; exit 2; }
	@test -n "$(filter command line environment override,$(origin REGISTRY))" || { echo "error: set REGISTRY=HOST[/PATH], where the release goes (the chart to oci://REGISTRY/charts)" >&2; exit 2; }
	@echo "==> release $(VERSION): the version, the CHANGELOG, $(CHART_REPOSITORY)"
	$(RELEASE_PY) check $(VERSION) --chart-repository $(CHART_REPOSITORY) --helm $(HELM4)
	@echo "==> release $(VERSION): the release checks"
	$(RELEASE_AUDIT)
	@echo "==> release $(VERSION): the signed package"
	$(MAKE) --no-print-directory package
	@echo "==> release $(VERSION): the images"
	$(if $(strip $(RELEASE_IMAGES)),$(RELEASE_IMAGES),@echo "none pushed: RELEASE_IMAGES is empty")
	@echo "==> release $(VERSION): the chart"
	$(RELEASE_PY) push $(PACKAGE) --chart-repository $(CHART_REPOSITORY) --helm $(HELM4)

upgrade-baseline: $(HELM4) ## Make the release at BASELINE_REF (its commit or tag) the upgrade tests' baseline: its packaged chart and its deployer
	@test -n "$(BASELINE_REF)" || { echo "error: set BASELINE_REF to the previous release's commit or tag" >&2; exit 2; }
	$(RELEASE_PY) baseline $(BASELINE_REF) --helm $(HELM4)

# --- the main job ----------------------------------------------------------------------------

DEMO_SECONDS ?= 60
DEMO_QPS ?= 200

.PHONY: demo
demo: venv tools ## The whole path on this machine: sample model, Triton as the chart runs it, Locust (DEMO_SECONDS=60 DEMO_QPS=200)
	$(PY) -m demo --seconds $(DEMO_SECONDS) --qps $(DEMO_QPS) --helm $(HELM4) --out $(BUILD)/demo

SOAK_MINUTES ?= 10
SOAK_QPS ?= 200

.PHONY: soak
soak: venv tools ## The demo's server under constant load; failures, QPS, p50/p95/p99 and server memory per minute (SOAK_MINUTES=10 SOAK_QPS=200)
	$(PY) -m demo.soak --minutes $(SOAK_MINUTES) --qps $(SOAK_QPS) --helm $(HELM4) --out $(BUILD)/soak

# --- benchmarks ------------------------------------------------------------------------------

.PHONY: bench bench-locust
bench: bench-locust bench-deployer bench-cpu-runtime bench-model-loading ## Every CPU benchmark, each side by side in one run (docs/benchmarks.md)

bench-locust: venv ## Load generators against one local Triton: this locustfile (one process, then 1 and 2 distributed workers), the original's style, tritonclient
	$(PY) -m bench.clients --out $(BUILD)/bench

# Needs an NVIDIA GPU and a Python whose torch has CUDA (the .venv's torch is the CPU build):
#   make bench-gpu GPU_PYTHON=/path/to/python   (docs/benchmarks.md has the H200 figures)
GPU_PYTHON ?= $(PY)
BENCH_GPU_ARGS ?=

.PHONY: bench-gpu
bench-gpu: tools ## BERT-large through Triton against the raw network on a GPU (GPU_PYTHON, BENCH_GPU_ARGS)
	$(GPU_PYTHON) -m bench.gpu --helm $(HELM4) --out $(BUILD)/bench-gpu $(BENCH_GPU_ARGS)

.PHONY: locust-bundle
locust-bundle: ## Write the load-test chart's bundle (the locustfile and its modules) before `helm install ... locust/chart`
	$(PYTHON_BOOT) scripts/locust_bundle.py

.PHONY: perf-analyzer-inputs
perf-analyzer-inputs: ## Rewrite chart/files/perf-analyzer-inputs.json (the sample's inputs for the perf_analyzer test Job)
	$(PYTHON_BOOT) -m scripts.perf_analyzer_inputs

.PHONY: generate chart-docs
generate: venv ## Write every generated file from its one source: the chart's schema and README table (values.yaml), Chart.yaml's appVersion, schema.yaml and deployer/rbac.yaml (schema.form.yaml), SECURITY.md's images table
	$(PY) -m scripts.generate

chart-docs: generate

# --- the deployer ------------------------------------------------------------------------------

.PHONY: bench-deployer
bench-deployer: venv tools debian-packages ## Deployer cost (plan, apply; waits excluded) on the local control plane -> docs/benchmarks.md
	$(PY) -m bench.deployer_cost --helm $(HELM4) --runs 7 --write docs/benchmarks.md

# The listing's images (docs/marketplace.md): the deployer, and the Triton and tester images
# schema.yaml declares, republished; each tagged publishedVersion (X.Y.Z) and X.Y, with the
# Marketplace annotation. Built with docker when its daemon answers, else buildah.
#   make image [REGISTRY=gcr.io/PROJECT] [VERIFY_MODEL_REPOSITORY=gs://BUCKET/PATH]
#   make push REGISTRY=gcr.io/PROJECT [MARKETPLACE_SERVICE_NAME=services/NAME]
REGISTRY ?= localhost
# Default: services/SOLUTION.endpoints.PARTNER.cloud.goog, from schema.yaml's listing IDs.
MARKETPLACE_SERVICE_NAME ?=
VERIFY_MODEL_REPOSITORY ?=
IMAGE_TOOL ?=
IMAGE_ARGS = --registry $(REGISTRY) $(if $(IMAGE_TOOL),--tool $(IMAGE_TOOL)) \
  $(if $(MARKETPLACE_SERVICE_NAME),--service-name $(MARKETPLACE_SERVICE_NAME)) \
  $(if $(VERIFY_MODEL_REPOSITORY),--verify-model-repository $(VERIFY_MODEL_REPOSITORY))

.PHONY: image-builder
image-builder: # buildah, when no Docker daemon answers and it is missing (Debian)
	@docker info >/dev/null 2>&1 || command -v buildah >/dev/null || { \
	  echo "==> installing buildah (apt-get)"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah runc >/dev/null; }

.PHONY: image
image: venv image-builder ## Build the deployer image REGISTRY/APP/deployer, tags X.Y.Z and X.Y (the build itself needs no network)
	$(PY) -m scripts.image build $(IMAGE_ARGS)

.PHONY: push
push: image ## Push the deployer and republish the Triton and tester images to REGISTRY, with the Marketplace annotation
	$(PY) -m scripts.image push $(IMAGE_ARGS)

.PHONY: image-requirements
image-requirements: venv ## Regenerate the image's hashed requirements (deployer/image-*requirements.txt) from pyproject.toml and constraints.txt
	$(PY) scripts/image_requirements.py

.PHONY: e2e
e2e: venv tools ## Deploy, check and delete on a real cluster from KUBECONFIG with the deployer's Role (not in CI)
	HELM=$(HELM4) tests/deployer/e2e.sh

# --- BERT sample -----------------------------------------------------------------------------
# make model-repository VARIANT=python|onnx|tensorrt SIZE=large|base|tiny OUT=build/models
#   weights: MODEL_ID=hub-id or CHECKPOINT=folder (real), else SIZE (RANDOM weights)
#   optional: DEVICE=cpu|gpu, GPU=t4|l4|a100|h100
#   (tensorrt), REPLACE=1 (replace an existing model), BUILD_ARGS="--max-batch-size 16 ..."
# make upload OUT=build/models DEST=gs://BUCKET/PREFIX [UPLOAD_ARGS=--delete]
VARIANT ?=
SIZE ?= large
OUT ?= $(BUILD)/models

.PHONY: model-repository
model-repository: venv ## Write the BERT model repository (VARIANT; MODEL_ID, CHECKPOINT or SIZE; OUT)
	@test -n "$(VARIANT)" || { echo "error: set VARIANT=python, onnx or tensorrt" >&2; exit 2; }
	$(PY) -m samples.bert build --variant $(VARIANT) --output $(OUT) \
	  $(if $(MODEL_ID),--model-id $(MODEL_ID),$(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),--size $(SIZE))) \
	  $(if $(DEVICE),--device $(DEVICE)) $(if $(GPU),--gpu $(GPU)) \
	  $(if $(filter 1,$(REPLACE)),--replace) $(BUILD_ARGS)

.PHONY: upload
upload: venv ## Copy the model repository OUT to DEST=gs://BUCKET/PREFIX (unchanged files skipped)
	@test -n "$(DEST)" || { echo "error: set DEST=gs://BUCKET/PREFIX" >&2; exit 2; }
	$(PY) -m samples.bert upload $(OUT) $(DEST) $(UPLOAD_ARGS)

MODEL_LOADING_SIZE ?= base

.PHONY: bench-model-loading
bench-model-loading: venv tools ## The sample loaded by the local Triton from a GCS emulator against a local path (MODEL_LOADING_SIZE=base; ~5 min) -> docs/model-loading.md
	$(PY) -m bench.model_loading --size $(MODEL_LOADING_SIZE) --rounds 5 --helm $(HELM4) --out $(BUILD)/bench-model-loading

.PHONY: bench-cpu-runtime
bench-cpu-runtime: venv ## Serve the tiny python variant on each CPU runtime, side by side (~2 min)
	$(PY) -m bench.cpu_runtime --seconds 12 --concurrency 16
