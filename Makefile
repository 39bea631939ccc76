# The README's two commands, on a machine that has only Python (3.11+) and make:
#   make quickstart   a virtual environment in .venv with PyTorch and finegpt, then `finegpt quickstart`
#   make test         the same environment, then the test suite (what CI runs)
#   make site         the static calculator page in site/ (Pyodide from npm, finegpt's wheel); needs npm
# PyTorch: the CPU build from PyTorch's CPU index unless nvidia-smi sees a GPU (then PyPI's CUDA build);
# where that index cannot be reached, pip's own configuration (a local wheel, a mirror) is tried instead.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin
PY := $(BIN)/python
PIP := $(PY) -m pip install --disable-pip-version-check

.PHONY: quickstart test install clean site

quickstart: $(VENV)/.installed
	$(BIN)/finegpt quickstart

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadfile tests

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	if nvidia-smi -L >/dev/null 2>&1; then $(PIP) "$(TORCH)"; \
	else $(PIP) --timeout 15 --retries 1 --index-url $(TORCH_CPU_INDEX) "$(TORCH)" || $(PIP) "$(TORCH)"; fi
	$(PIP) -e ".[dev,extras]"
	touch $@

# The static calculator page (site/, for GitHub Pages or any file server): Pyodide from npm, finegpt's wheel
site:
	npm ci --no-audit --no-fund
	$(PYTHON) tools/build_site.py

clean:
	rm -rf $(VENV)
