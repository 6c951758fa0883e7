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

demo: install
	$(VENV)/bin/rrrnet info --arch resnet152 --blocks 1,1,1,1 --branches 8 --num-classes 20 --image-size 128

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
