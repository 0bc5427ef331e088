# The only entry points. Each target sets up what it needs, and running it twice does nothing new.
#   make setup   system liburing (apt as root, else the exact command to run), .venv, editable install + test deps
#   make lab     setup, then JupyterLab on the welcome chapter (bound to 127.0.0.1)
#   make test    setup, then the test suite and every notebook (nbval) in quick mode
#   make book    setup, then re-execute every notebook in place, full mode (the committed outputs)
#   make bench   setup, then the benchmark scripts (they print ratios; they are not tests)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
SYSTEM := $(VENV)/.system-deps
# The extension is rebuilt whenever its C, its builder or the package metadata change.
BUILD_INPUTS := $(shell find native -name '*.[ch]' 2>/dev/null) uringkit/_build_native.py setup.py pyproject.toml
APT_PACKAGES := liburing-dev pkg-config wrk apache2-utils chromium
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]-*.ipynb))

.PHONY: setup lab test test-python test-notebooks book bench clean

setup: $(INSTALLED)

$(SYSTEM):
	@if ! pkg-config --exists liburing 2>/dev/null || ! command -v wrk >/dev/null || ! command -v ab >/dev/null \
	    || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make setup: installing $(APT_PACKAGES) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  elif ! pkg-config --exists liburing 2>/dev/null; then \
	    echo "uringkit needs liburing 2.x and pkg-config. Install them, then run make again:"; \
	    echo "  Debian/Ubuntu:  sudo apt-get install liburing-dev pkg-config"; \
	    echo "  Fedora/RHEL:    sudo dnf install liburing-devel pkgconf-pkg-config"; \
	    echo "  conda:          conda env create -f environment.yml && conda activate uringkit"; \
	    exit 1; \
	  else \
	    echo "make setup: wrk, ab or chromium is missing: the benchmarks or the browser test will say so and skip"; \
	  fi; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
	  { echo "uringkit needs Python >= 3.10 (found $$($(PYTHON) --version)); set PYTHON=python3.x"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@touch $@

$(INSTALLED): $(SYSTEM) $(BUILD_INPUTS)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -c 'import uringkit._native'
	@touch $@

lab: setup
	$(VENV)/bin/jupyter lab --ip=127.0.0.1 $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) notebooks/00-welcome.ipynb

test: test-python test-notebooks

test-python: setup
	URINGKIT_QUICK=1 $(PY) -m pytest tests/

test-notebooks: setup
	URINGKIT_QUICK=1 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:warnings notebooks/

# Widget state is stripped after the run (nbclient's Output-widget hook needs it while executing): the committed
# chapters show each widget's static fallback, never a stale saved widget.
book: setup
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=7200 $(NOTEBOOKS)
	$(PY) -c 'import nbformat, sys; notebooks = {p: nbformat.read(p, 4) for p in sys.argv[1:]}; \
	  [nb.metadata.pop("widgets", None) for nb in notebooks.values()]; \
	  [nbformat.write(nb, p) for p, nb in notebooks.items()]' $(NOTEBOOKS)

bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/ring.py
	$(PY) benchmarks/ring_breakdown.py
	$(PY) benchmarks/servers.py
	$(PY) benchmarks/loadgen.py

clean:
	rm -rf $(VENV) build *.egg-info uringkit/_native*.so uringkit/_native.c benchmarks/_build
