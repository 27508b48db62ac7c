# dask-platform. The README names two commands: `make demo` and `make test`.
# Both do their own set-up on a fresh machine: uv and the locked virtualenv; `make test` also the
# system packages (scripts/install-system-deps, as root).

SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
# Recipes and the tools they start (the images lock, checkov through `uv tool run`) find uv too.
export PATH := $(patsubst %/,%,$(dir $(UV))):$(PATH)
# Trust the machine's certificate store (a TLS-inspecting proxy's CA lives there); uv's own
# bundle would not. UV_NATIVE_TLS is the name older uv releases read.
export UV_SYSTEM_CERTS ?= 1
export UV_NATIVE_TLS ?= 1
PYTEST_ARGS ?=
BENCH_ARGS ?=
STACK ?= dev
# The chart cache (helm/charts.yaml pins what must be in it). The product reads only this
# setting; where the workspace keeps the pinned archives beside the checkout, point at them.
DASK_PLATFORM_CHART_CACHE ?= $(firstword $(wildcard $(CURDIR)/../shared/upstream/charts))
export DASK_PLATFORM_CHART_CACHE

.PHONY: help setup system-deps demo demo-images test test-unit lint format plan images images-lock bench clean

help:
	@echo "make demo    - start the embedded local platform and prove keyless S3 from Dask workers"
	@echo "make demo-images - the demo on workers that are containers of the worker image (+ xarray)"
	@echo "make test    - lint + the whole test suite (unit, policy, integration, images)"
	@echo "make plan STACK=<name> - evaluate a committed stack offline and run the policy gate"
	@echo "make images  - build the worker, notebook and gateway images from the lock"
	@echo "make images-lock - re-resolve images/uv.lock, pinned to uv.lock"
	@echo "make bench   - run the benchmarks and update bench/README.md"

# uv into the user's ~/.local/bin; on a distribution Python that refuses pip (PEP 668) the
# user-site install is still safe, so it is retried with --break-system-packages.
$(UV):
	python3 -m pip install --quiet --user uv \
	  || python3 -m pip install --quiet --user --break-system-packages uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --all-extras --frozen
	@touch $@

setup: .venv/.synced

system-deps:
	@scripts/install-system-deps

# WORKER_IMAGE=<ref>: the demo's schedulers and workers run as podman containers of that image.
WORKER_IMAGE ?=
demo: setup
	$(UV) run --frozen dask-platform demo $(if $(WORKER_IMAGE),--worker-image $(WORKER_IMAGE))

# The demo on image-based workers: builds (or reuses) the worker image of the lock first.
demo-images: setup
	$(UV) run --frozen scripts/build-images --image worker
	$(MAKE) demo WORKER_IMAGE=localhost/dask-platform/worker:$$($(UV) run --frozen python -c \
	  'from dask_platform.images.lock import lock_sha256, lock_tag; print(lock_tag(lock_sha256()))')

lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

format: setup
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

test-unit: setup
	$(UV) run --frozen pytest tests/unit $(PYTEST_ARGS)

test: setup system-deps lint
	$(UV) run --frozen pytest $(PYTEST_ARGS)

plan: setup
	$(UV) run --frozen dask-platform plan --stack $(STACK)

images: setup
	$(UV) run --frozen scripts/build-images

images-lock: setup
	$(UV) run --frozen scripts/lock-images

bench: setup
	$(UV) run --frozen python -m bench $(BENCH_ARGS)

clean:
	rm -rf .venv .dask-platform .pytest_cache .ruff_cache .mypy_cache
