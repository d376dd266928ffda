# Two entry points: `make demo` and `make test`. Both create/reuse .venv.
PYTHON ?= python3
VENV   ?= .venv
# The CPU build installs quickly; GPU users override, e.g. make TORCH="torch==2.13.0" TORCH_INDEX=...
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.qselect-installed

.PHONY: demo test setup bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[all]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m qselect demo

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m qselect bench

clean:
	rm -rf $(VENV) build *.egg-info
