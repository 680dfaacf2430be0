# Every target creates .venv if missing and installs what it needs first.
# torch is pinned and installed before the project so pip never pulls a CUDA build.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
# Re-install when the project's metadata or build changes.
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install test demo bench build clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77" wheel

$(STAMP): pyproject.toml setup.py | $(PY)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q "Cython>=3.0" "numpy>=2.0"
	$(PIP) install -q --no-build-isolation -e ".[torch,spark,notebooks,dev]"
	touch $(STAMP)

install: $(STAMP) build

# Rebuild compiled kernels whose .pyx changed (a no-op when nothing did).
build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

test: install
	$(PY) -m pytest -q

demo: install
	$(PY) -m embcompress demo

$(BENCH_STAMP): $(STAMP)
	$(PIP) install -q -e ".[bench]" --no-build-isolation
	touch $(BENCH_STAMP)

bench: install $(BENCH_STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf build $(VENV) *.egg-info
	find embcompress learned_hash analysis -name '*.so' -delete
	find embcompress learned_hash analysis -name '*.c' -delete
