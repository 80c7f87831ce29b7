# The two commands a person needs: `make serve` and `make test`. Both set up everything from a fresh clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
DEPS   := $(VENV)/.deps-installed
BUILT  := $(VENV)/.built
DEMO   := data/demo/.generated
SOURCES := $(wildcard ext/*.pyx ext/*.pxd protos/imgsvc/v1/*.proto) setup.py pyproject.toml

.PHONY: serve test build demo bench bench-side fuzz soak clients clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEPS): pyproject.toml | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "setuptools>=68" wheel "cython>=3.0" "numpy>=1.26" "grpcio-tools>=1.60"
	$(PIP) install --quiet --no-build-isolation -e ".[test]"
	touch $@

$(BUILT): $(DEPS) $(SOURCES)
	$(PY) setup.py --quiet build_ext --inplace
	touch $@

build: $(BUILT)

$(DEMO): $(BUILT)
	$(PY) -m imgsvc demo

demo: $(DEMO)

serve: build demo
	$(PY) -m imgsvc migrate
	$(PY) -m imgsvc serve

# The real clients the tests drive (Debian chromium, npm packages, the ArcGIS API for Python venv); idempotent.
clients:
	sh tests/clients/setup.sh

test: build clients
	$(PY) -m pytest -q

bench: build demo
	$(PY) -m bench

# imgsvc against GDAL by hand, rio-tiler and TiTiler (bench/bench_side_by_side.py; about an hour, or
# `make bench-side BENCH_ARGS=--quick`).  TiTiler and rio-tiler get a venv of their own, made with our interpreter
# (rio-tiler is imported into the suite's process from it); the data is written once under data/bench-side/.
TITILER_VENV := bench/.venv-titiler
$(TITILER_VENV)/.installed: bench/requirements-titiler.txt | $(PY)
	$(PY) -m venv $(TITILER_VENV)
	$(TITILER_VENV)/bin/pip install --quiet -r bench/requirements-titiler.txt
	touch $@

bench-side: build $(TITILER_VENV)/.installed
	$(PY) -m bench.bench_side_by_side $(BENCH_ARGS)

# The long seeded fuzz of the REST door (100 000 requests; the suite runs 600 of the same).
fuzz: build clients
	IMGSVC_FUZZ_EXAMPLES=50000 $(PY) -m pytest -q -s tests/test_fuzz_rest.py

# Ten minutes of open-loop load at 80% of the measured peak on `imgsvc serve` as `make serve` runs it: p99 and
# resident memory each minute, errors (`python -m bench.soak --mode varied` goes round every demo service instead;
# `--server-cpus 0` gives the server and the harness cores of their own, on a machine with cores to spare).
soak: build demo
	mkdir -p bench/results
	$(PY) -m bench.soak --minutes 10 --json bench/results/soak.json

clean:
	rm -rf build $(VENV) tests/clients/build tests/clients/node_modules imgsvc/_kernels/*.so imgsvc/v1/*_pb2*.py* ext/*.c
