# The two quickstart commands (README): `make demo` and `make test`.
# Both set everything up first (a virtual environment with pinned packages).
#   make demo        the Fashion-MNIST demo alone (a few minutes)
#   make results     every default target of params.yaml (`targets`; what CI builds and gates)
#   make everything  every experiment whose data is available here (heavier)

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= 2
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup system-packages demo results everything test check dvc-yaml dag readme clean-results

# Debian packages: Fashion-MNIST (offline demo data) and graphviz (DAG picture).
# Installed only when running as root with apt; otherwise the download stage falls
# back to the official URLs and the DAG picture is skipped.
system-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  pkgs="dataset-fashion-mnist graphviz"; \
	  dpkg -s $$pkgs >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$pkgs \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$pkgs; }; }; \
	else echo "not root: skipping Debian packages (dataset-fashion-mnist, graphviz)"; fi

$(VENV)/.installed: requirements.lock pyproject.toml
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

setup: system-packages $(VENV)/.installed

demo: setup
	snakemake --cores $(CORES) demo

results: setup
	snakemake --cores $(CORES)

everything: setup
	snakemake --cores $(CORES) everything

check: setup
	pseudosup check-metrics

test: setup
	pytest -q

dvc-yaml: setup
	pseudosup dvc-yaml

dag: setup
	snakemake --rulegraph 2>/dev/null | dot -Tpng -o docs/rulegraph.png

readme: setup
	pseudosup readme
