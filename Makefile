# Two entry points: `make demo` and `make test`. Both create/reuse .venv.
PYTHON ?= python3
VENV   ?= .venv
# The CPU build installs quickly; GPU users override, e.g. make TORCH="torch==2.13.0" TORCH_INDEX=...
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
PY     := $(VENV)/bin/python
# The stamp holds the torch requirement it was installed with: a different TORCH/TORCH_INDEX
# reinstalls (else `make demo TORCH=...` on an existing .venv would silently keep the old build).
STAMP  := $(VENV)/.qselect-installed
TORCH_SPEC := $(strip $(TORCH) $(TORCH_INDEX))
ifneq ($(strip $(shell cat $(STAMP) 2>/dev/null)),$(TORCH_SPEC))
.PHONY: $(STAMP)
endif

.PHONY: demo test lint setup bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet $(TORCH) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[all]"
	echo '$(TORCH_SPEC)' > $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m qselect demo

# lint first (ruff: pyflakes, import order, line length, numpydoc docstrings), then the tests;
# pytest exit 5 = no tests collected: a failure for us (make fails on any non-zero code), said plainly
test: $(STAMP)
	$(PY) -m ruff check qselect tests benchmarks tools
	$(PY) -m pytest; rc=$$?; [ $$rc -ne 5 ] || echo "make test: pytest collected no tests" >&2; exit $$rc

lint: $(STAMP)
	$(PY) -m ruff check qselect tests benchmarks tools

bench: $(STAMP)
	$(PY) -m qselect bench

clean:
	rm -rf $(VENV) build *.egg-info
