# The two commands a person needs: `make demo` and `make test`. Both set up
# everything on a fresh machine (venv outside the clone, Apache Kafka jars).
SHELL := /bin/bash
PY := .venv/bin/python
EVENTS ?= 20000
BAD ?= 50

.PHONY: venv kafka redis-tls demo test test-unit test-integration test-slow lint format typecheck bench check clean data train eval

venv:
	@bash scripts/bootstrap.sh >/dev/null

kafka:
	@bash scripts/kafka.sh fetch >/dev/null

redis-tls:
	@bash scripts/redis_tls.sh

demo: venv
	$(PY) -m streams.cli demo --events $(EVENTS) --bad-events $(BAD)

test: venv kafka redis-tls
	$(PY) -m pytest -q

test-unit: venv
	$(PY) -m pytest -q -m "not integration"

test-integration: venv kafka redis-tls
	$(PY) -m pytest -q -m integration

test-slow: venv kafka
	$(PY) -m pytest -q -m slow

lint: venv
	$(PY) -m ruff check enf_core models streams tests bench

format: venv
	$(PY) -m ruff format enf_core models streams tests bench
	$(PY) -m ruff check --fix enf_core models streams tests bench

typecheck: venv
	$(PY) -m mypy

check: lint typecheck test

bench: venv kafka
	$(PY) bench/stream_bench.py
	$(PY) bench/scorer_bench.py
	$(PY) bench/video_bench.py

# The agents on the default simulation: data (~25 s), training (~5 min), eval (ENF + eight
# baselines on four tasks: long on a loaded 2-core machine; --baselines picks fewer).
data: venv
	$(PY) -m streams.cli data simulate --out data/sim

train: data
	$(PY) -m streams.cli train agents --data data/sim --out data/model

eval: venv
	$(PY) -m streams.cli eval quick --data data/sim --model data/model --steam-path ../shared/data/steam --json

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
