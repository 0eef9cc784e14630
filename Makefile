# The project's verbs. Each target installs what it needs on a fresh machine
# (Debian, Python 3.11): a virtual environment in .venv and helm binaries in .tools.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
# The helm versions, from their one pin (scripts/helm-pins.toml).
helm_version = $(shell sed -n '/^\[$(1)\]/,/^\[/s/^version = "\(.*\)"/\1/p' scripts/helm-pins.toml)
HELM3 := $(TOOLS)/helm-$(call helm_version,helm3)/helm
HELM4 := $(TOOLS)/helm-$(call helm_version,helm4)/helm
CHECKOV_VENV := .venv-checkov
CHART := chart
BUILD := build

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export HELM3 HELM4

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# --- environment ---------------------------------------------------------------------------

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	@echo "==> creating $(VENV) (pinned; first run takes a few minutes)"
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --editable .
	touch $@

$(HELM3) $(HELM4) &:
	$(PYTHON_BOOT) scripts/install_helm.py $(TOOLS)

$(CHECKOV_VENV)/.installed:
	@echo "==> creating $(CHECKOV_VENV) (checkov pins its own dependencies, so it lives apart)"
	$(PYTHON_BOOT) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==3.3.30
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
lint: venv tools ## ruff, mypy, the import layers, helm lint (Helm 3 and 4), yamllint on the rendered chart
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
	yamllint -c .yamllint.yaml $(BUILD)/lint/default.yaml $(CHART)/values.yaml $(wildcard schema.yaml)
	yamllint -c .yamllint.yaml deployer/rbac.yaml deployer/marketplace/test-schema.yaml
	hadolint Dockerfile.deployer

.PHONY: etcd
etcd: ## etcd for the control-plane tests (Debian's etcd-server), installed when missing
	@command -v etcd >/dev/null || { echo "==> installing etcd-server (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null; }

.PHONY: test
test: lint etcd ## Lint, then run every test (pytest), the control-plane ones included
	pytest

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

.PHONY: chart-docs
chart-docs: venv ## Regenerate the values table of chart/README.md from chart/values.yaml
	$(PY) scripts/chart_values_table.py chart

# --- the deployer ------------------------------------------------------------------------------

.PHONY: bench-deployer
bench-deployer: venv tools etcd ## Deployer cost (plan, apply; waits excluded) on the local control plane -> docs/benchmarks.md
	$(PY) -m tests.kube $(PY) -m bench.deployer_cost --helm $(HELM4) --runs 7 --write docs/benchmarks.md

.PHONY: e2e
e2e: venv tools ## Deploy, check and delete on a real cluster from KUBECONFIG with the deployer's Role (not in CI)
	HELM=$(HELM4) tests/deployer/e2e.sh

# --- BERT sample -----------------------------------------------------------------------------
# make model-repository VARIANT=python|onnx|tensorrt SIZE=large|base|tiny OUT=build/models
#   optional: CHECKPOINT=folder (instead of SIZE), DEVICE=cpu|gpu, GPU=t4|l4|a100|h100
#   (tensorrt), REPLACE=1 (replace an existing model), BUILD_ARGS="--max-batch-size 16 ..."
# make upload OUT=build/models DEST=gs://BUCKET/PREFIX [UPLOAD_ARGS=--delete]
VARIANT ?=
SIZE ?= large
OUT ?= $(BUILD)/models

.PHONY: model-repository
model-repository: venv ## Write the BERT model repository (VARIANT, SIZE or CHECKPOINT, OUT)
	@test -n "$(VARIANT)" || { echo "error: set VARIANT=python, onnx or tensorrt" >&2; exit 2; }
	$(PY) -m samples.bert build --variant $(VARIANT) --output $(OUT) \
	  $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),--size $(SIZE)) \
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
