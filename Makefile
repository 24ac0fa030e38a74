# The two commands of the README: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install compiled wheel wheel-check run test check bench peers soak schemas readme browser clean

install: $(STAMP) compiled

# The hot path compiled with mypyc from the same source (streams/compiled.py): rebuilt when the source changed.
# A C compiler (Debian's gcc) is installed first when root and apt-get are at hand; where none can be, the build is
# skipped with a note and the interpreted modules run (tests/streams/test_compiled.py fails where one could be).
compiled: $(STAMP)
	@command -v $${CC:-cc} >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q gcc >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	    apt-get install -y -q gcc >/dev/null 2>&1; }; }; } || \
	  echo "note: no C compiler and none can be installed here; the hot path runs interpreted"
	@$(PY) -c 'import streams.compiled as c; c.build()'

# The production package: a wheel carrying the compiled hot path (setup.py), built with this venv's mypy and
# dependencies; `make wheel-check` installs it into a fresh venv without extras and runs a worker from it.
wheel: install
	rm -rf dist build/lib* && $(PY) -m pip wheel --quiet --no-build-isolation --no-deps --wheel-dir dist .

wheel-check: wheel
	docker/check-wheel.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,embedded,charts]'
	@rm -f $(VENV)/.installed-* && touch $@

# The dashboard's browser test needs Debian's Chromium: installed here when root and apt-get are at hand, else
# the test is skipped with its reason (make install never installs system packages).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	    apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: Debian's chromium is not installed; the dashboard's browser test is skipped"

run: install
	$(PY) -m streams.cli demo run

# Everything with the compiled hot path (when built), then the unit tests again on the interpreted source, each in
# TEST_WORKERS processes (pytest-xdist; each starts its own broker and Redis): the integration tests mostly wait on
# group joins and flushes, so 4 on 2 cores took the suite from about 900 s to 277-357 s; worksteal, as the tests'
# lengths differ a hundredfold (with xdist's default split, 478-510 s). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 4
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal
test: check browser
	@$(PYTEST); rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; \
	  [ $$rc -eq 0 ] || exit $$rc; \
	  echo "again on the interpreted source: tests/segmenter tests/schemas tests/streams"; \
	  SEGMENTER_COMPILED=0 $(PYTEST) -q tests/segmenter tests/schemas tests/streams; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

check: install
	$(VENV)/bin/ruff check schemas segmenter streams tests bench examples setup.py
	$(VENV)/bin/mypy

# The peer the bench compares with, in a virtual environment of its own (segmenter does not depend on it), with
# the redis extra for its read model (Quix Streams' RedisSink).
QUIX_VERSION := 3.28.1
PEERS := var/peers/quix
PEERS_STAMP := $(PEERS)/.installed-$(QUIX_VERSION)-redis
peers: $(PEERS_STAMP)

$(PEERS_STAMP):
	@test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet 'quixstreams[redis]==$(QUIX_VERSION)'
	@rm -f $(PEERS)/.installed-* && touch $@

bench: install peers
	$(PY) -m bench.peers.compare
	$(PY) -m bench.peers.compare --customers 1000000 --events 1500000 --rounds 1
	$(PY) -m bench.rules_change --customers 1000000
	$(PY) -m bench.core
	$(PY) -m bench.engine
	$(PY) -m bench.engine --rules-change --customers 200000
	$(PY) -m bench.projection
	$(PY) -m bench.stream --latency-rate 1000 --latency-seconds 60
	$(PY) -m bench.actions
	$(PY) -m bench.preview
	$(PY) -m bench.population
	$(PY) -m bench.api

soak: install
	$(PY) -m bench.soak

schemas: install
	$(PY) -m streams.cli schemas export schemas/json

readme: install
	$(PY) -m streams.cli settings --readme README.md

clean:
	rm -rf $(VENV) var dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis
