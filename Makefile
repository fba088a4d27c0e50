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

.PHONY: setup system-packages demo results everything test lint lint-format lint-python lint-snakemake check dvc-yaml dag readme clean-results

# Debian packages: Fashion-MNIST (offline demo data), graphviz (DAG picture),
# headless Chromium (tests/test_report.py renders `snakemake --report` in it) and
# bsdtar (libarchive-tools: extracts the RAR archive of NUS-WIDE's low-level features).
# Installed only when running as root with apt; otherwise the download stage falls
# back to the official URLs, the DAG picture is skipped and so is the report test.
SYSTEM_PACKAGES := dataset-fashion-mnist graphviz chromium chromium-driver libarchive-tools
system-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  pkgs="$(SYSTEM_PACKAGES)"; \
	  dpkg -s $$pkgs >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$pkgs \
	    || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$pkgs; }; }; \
	else echo "not root: skipping Debian packages ($(SYSTEM_PACKAGES))"; fi

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
	pytest -q --durations=25

# Lint: the workflow's format (snakefmt, settings in pyproject.toml), Python (ruff, rules in
# pyproject.toml) and Snakemake's own lints. Of those, the only one accepted is "Specify a
# conda environment or container for each rule": every rule runs the same `pseudosup` CLI
# from one environment pinned by requirements.lock (`make setup`), which DVC's stages use
# too; per-rule conda environments or containers would duplicate the multi-GB torch install
# per rule and could not be used by DVC. `snakemake --lint` cannot be told to skip one lint,
# so its output is filtered: any other lint, or a workflow that fails to load, fails here.
LINT_ACCEPTED := Specify a conda environment or container for each rule
# every check runs (so one run lists all problems); lint fails if any of them failed
lint: setup
	@rc=0; for t in lint-format lint-python lint-snakemake; do \
	  $(MAKE) --no-print-directory $$t || rc=1; done; exit $$rc

lint-format:
	snakefmt --check --diff Snakefile workflow/rules

lint-python:
	ruff check src tests benchmarks scripts

lint-snakemake:
	@out=$$(snakemake --lint 2>&1); rc=$$?; \
	if [ $$rc != 0 ] && ! grep -q '^Lints for' <<<"$$out"; then \
	  echo "$$out"; echo "snakemake --lint failed to load the workflow (above)"; exit 1; fi; \
	other=$$(grep -E '^ +\* ' <<<"$$out" | grep -vF '$(LINT_ACCEPTED)' || true); \
	if [ -n "$$other" ]; then echo "$$out"; echo "snakemake --lint: lints other than conda/container:"; \
	  echo "$$other"; exit 1; fi; \
	echo "snakemake --lint: clean apart from $$(grep -cF '$(LINT_ACCEPTED)' <<<"$$out") conda/container lints (accepted: see the Makefile)"

dvc-yaml: setup
	pseudosup dvc-yaml

dag: setup
	snakemake --rulegraph 2>/dev/null | dot -Tpng -o docs/rulegraph.png

readme: setup
	pseudosup readme
