# mtl-tl-book: `make book` builds the site, `make test` checks everything. `make help` lists all.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MTL_TL_PROFILE ?= quick
# Matplotlib draws to files, never to a window, when notebooks run under make.
export MPLBACKEND := Agg

.PHONY: help setup book test unit notebooks site lab strip clean bench screenshots student

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is needed, found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[book,test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the package with its book and test extras

book: $(STAMP) ## Execute every notebook (quick profile) and build the site into _build/html
	$(VENV)/bin/jupyter-book build . -n -W --keep-going
	@echo "Open $(CURDIR)/_build/html/index.html"

unit: $(STAMP) ## Run the unit tests
	$(PY) -m pytest tests -q; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no unit tests: that is a failure here" >&2; exit 1; fi; exit $$rc

notebooks: $(STAMP) ## Execute every notebook listed in _toc.yml with nbmake
	nbs=$$($(PY) scripts/toc_notebooks.py); \
	  if [ -z "$$nbs" ]; then echo "_toc.yml lists no notebook" >&2; exit 1; fi; \
	  $(PY) -m pytest --nbmake --nbmake-timeout=300 -q $$nbs; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "nbmake collected no notebook" >&2; exit 1; fi; exit $$rc

site: $(STAMP) ## Check that the site builds with zero warnings
	$(VENV)/bin/jupyter-book build . -n -W --keep-going

test: unit notebooks site ## Set up, then unit tests, every notebook, and a warning-free site build

lab: $(STAMP) ## Open Jupyter Lab on the book (installs jupyterlab on first use)
	$(PY) -m pip install --quiet -e '.[lab]'
	$(VENV)/bin/jupyter lab book/

strip: $(STAMP) ## Remove outputs and execution counts from every notebook
	$(PY) scripts/strip_outputs.py book

bench: $(STAMP) ## Run the benchmarks; writes benchmarks/results.json
	$(PY) benchmarks/run.py

clean: ## Remove the built site and caches (keeps .venv)
	rm -rf _build .jupyter_cache .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
