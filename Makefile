# mtl-tl-book: `make book` builds the site, `make test` checks everything. `make help` lists all.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MTL_TL_PROFILE ?= quick
# nbmake runs copies of the notebooks here (nbmake skips anything under _build).
NBMAKE_RUNS := _nbmake
# Notebooks run at once under nbmake; each uses one PyTorch thread (benchmarks/RESULTS.md).
NB_WORKERS ?= 2
# Unit tests and browser pages run this many at once (pytest-xdist): two fit the two cores.
TEST_WORKERS ?= 2
# make robust: every notebook again, on seeds its claims were not written with
# (MTL_TL_SEED_BASE; the site shows base 0). Its copies run here and are not stored.
ROBUST_SEED_BASE ?= 1000
NBMAKE_ROBUST := _nbmake_robust
# nbmake as every notebook run here uses it: NB_WORKERS at once, longest first when given
# in that order, with staggered kernel starts and a seed base per folder (scripts/notebook_runs.py).
NBMAKE := $(PY) -m pytest --nbmake --nbmake-timeout=300 -n $(NB_WORKERS) --dist worksteal -p scripts.notebook_runs -q

# Execute notebooks once, under nbmake, and keep their outputs for the site builds:
# copies of the notebooks in _toc.yml ($(1) = --stale: only those the execution cache
# lacks) run NB_WORKERS at a time, and their outputs go into the cache the builds read.
define execute_notebooks
	nbs=$$($(PY) scripts/execution_cache.py copies $(NBMAKE_RUNS) $(1)) || exit 1; \
	  if [ -z "$$nbs" ]; then echo "every notebook's outputs are in the execution cache"; exit 0; fi; \
	  $(NBMAKE) --overwrite $$nbs; \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "nbmake collected no notebook" >&2; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	  $(PY) scripts/execution_cache.py store $(NBMAKE_RUNS)
endef

# A warning-free jupyter-book build ($(1): its extra options) that takes every notebook's
# outputs from the cache: its log ($(2)) must show that it executed none itself.
define build_site
	mkdir -p $(dir $(2)); set -o pipefail; \
	  $(VENV)/bin/jupyter-book build . $(1) -n -W --keep-going 2>&1 | tee $(2) && \
	  $(PY) scripts/execution_cache.py check $(2)
endef

.PHONY: help setup book test sites unit notebooks robust check-notebooks site browser browser-deps lab strip clean bench screenshots student colab gpu-check

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is needed, found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the package with its book and test extras

book: $(STAMP) ## Execute the notebooks not yet run (nbmake, quick profile) and build the site into _build/html
	$(call execute_notebooks,--stale)
	$(call build_site,,_build/site.log)
	@echo "Open $(CURDIR)/_build/html/index.html"

unit: $(STAMP) ## Run the unit tests
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --ignore=tests/browser; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no unit tests: that is a failure here" >&2; exit 1; fi; exit $$rc

notebooks: $(STAMP) ## Execute every notebook listed in _toc.yml with nbmake and keep the outputs for the site
	$(call execute_notebooks,)

robust: $(STAMP) ## Execute every notebook again with another seed base (MTL_TL_SEED_BASE=1000); stores nothing
	rm -rf $(NBMAKE_ROBUST)
	nbs=$$($(PY) scripts/execution_cache.py copies $(NBMAKE_ROBUST)) || exit 1; \
	  MTL_TL_SEED_BASE=$(ROBUST_SEED_BASE) $(NBMAKE) $$nbs; \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "nbmake collected no notebook" >&2; exit 1; fi; exit $$rc

check-notebooks: $(STAMP) ## Both runs of make notebooks and make robust in one nbmake session (what make test runs)
	rm -rf $(NBMAKE_ROBUST)
	nbs=$$($(PY) scripts/execution_cache.py copies $(NBMAKE_RUNS)) && \
	  rob=$$($(PY) scripts/execution_cache.py copies $(NBMAKE_ROBUST)) || exit 1; \
	  MTL_TL_ROBUST_DIR=$(NBMAKE_ROBUST) MTL_TL_ROBUST_SEED_BASE=$(ROBUST_SEED_BASE) \
	  $(NBMAKE) --overwrite $$($(PY) scripts/execution_cache.py order $$nbs $$rob); \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "nbmake collected no notebook" >&2; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	  $(PY) scripts/execution_cache.py store $(NBMAKE_RUNS)

site: $(STAMP) ## Check that the site builds with zero warnings, from nbmake's outputs
	$(call execute_notebooks,--stale)
	$(call build_site,,_build/site.log)

browser-deps: ## Install Debian's Chromium for the browser test (needs root and apt-get)
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "Chromium is missing and cannot be installed here: the browser test will be skipped"; fi

browser: $(STAMP) browser-deps ## Open every page of the built site in headless Chromium, offline
	$(PY) -m pytest tests/browser -q -n $(TEST_WORKERS)

screenshots: $(STAMP) browser-deps ## Save a screenshot of every page under _build/screenshots
	@test -f _build/html/index.html || $(MAKE) site
	SCREENSHOTS=$(CURDIR)/_build/screenshots $(PY) -m pytest tests/browser -q
	@echo "Screenshots in $(CURDIR)/_build/screenshots"

test: unit check-notebooks sites browser ## Set up, then unit tests, every notebook (seed bases 0 and 1000), warning-free builds of the site and the student site, the browser test

# Notebooks the cache lacks run first, once, so that the two builds find none to run.
# The sub-make must not redo the set-up its parent just checked: GNU make does not pass -o down.
sites: $(STAMP) ## The site and the student site, built at once (two Sphinx builds, one core each), both from nbmake's outputs
	$(call execute_notebooks,--stale)
	$(MAKE) --no-print-directory -j2 -o $(STAMP) site student

lab: $(STAMP) ## Open Jupyter Lab on the book (installs jupyterlab and jupyterlab-myst on first use)
	$(PY) -m pip install --quiet -e '.[lab]'
	$(VENV)/bin/jupyter lab book/

colab: $(STAMP) ## Write the Colab edition of the notebooks (plain Markdown) into colab/; commit it
	$(PY) scripts/make_colab.py

strip: $(STAMP) ## Remove outputs and execution counts from every notebook
	$(PY) scripts/strip_outputs.py book

bench: $(STAMP) ## Run the benchmarks; writes benchmarks/results.json
	$(PY) benchmarks/run.py

gpu-check: $(STAMP) ## On a CUDA GPU: every notebook in both profiles, the GPU benchmark; table into benchmarks/RESULTS.md
	$(PY) scripts/gpu_check.py $(GPU_CHECK_ARGS)

student: $(STAMP) ## Student edition: notebooks without solutions, and a site with solutions hidden
	rm -rf _build/student
	$(PY) scripts/make_student.py notebooks _build/student/notebooks
	$(PY) scripts/make_student.py config _build/student/_config.yml
	$(call execute_notebooks,--stale)
	$(call build_site,--config _build/student/_config.yml --path-output _build/student,_build/student/build.log)
	$(PY) scripts/make_student.py check _build/student/_build/html
	@echo "Student notebooks: $(CURDIR)/_build/student/notebooks; student site: $(CURDIR)/_build/student/_build/html/index.html"

clean: ## Remove the built site and caches (keeps .venv)
	rm -rf _build _gpu_check $(NBMAKE_RUNS) $(NBMAKE_ROBUST) .jupyter_cache .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
