# Developer entry points. `make test` and `make demo` work on a fresh machine with Python 3.11+;
# the server tests also need Debian's influxdb, victoria-metrics, mosquitto(-clients), socat and
# mbpoll (`.ci/run` installs them as root).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint demo bench clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not servers and not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

demo: $(STAMP)
	$(VENV)/bin/chikyu-daq demo

# Every benchmark writes its JSON (figures beside the baselines measured in the same run) into
# benchmarks/out; one that takes no --out has its stdout kept there. A subset:
# `make bench BENCH=benchmarks/bench_live.py`.
BENCH ?= $(wildcard benchmarks/bench_*.py)

bench: $(STAMP)
	mkdir -p benchmarks/out
	for b in $(BENCH); do \
	  n=$$(basename $$b .py); echo "== $$n"; \
	  if grep -q -e '"--out"' $$b; then $(PY) $$b --out benchmarks/out; \
	  else $(PY) $$b > benchmarks/out/$$n.json; fi || exit 1; \
	done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
