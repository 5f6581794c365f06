PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_URL ?= demo-warehouse

.PHONY: install demo demo-agentdojo demo-inspect check test docs lint format-check bench torture clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(BIN)/warehouse demo --url $(DEMO_URL) --fresh

# AgentDojo's banking suite recorded live (no model): examples/agentdojo_live.py
demo-agentdojo: install
	$(BIN)/python examples/agentdojo_live.py agentdojo-warehouse agentdojo-runs

demo-inspect: install
	$(BIN)/python examples/inspect_live.py

# The quick tier for the edit loop (under 90 s): no slow tests, no S3 or PostgreSQL server, no
# processes started; `make test` runs everything, as CI does.
check: install
	$(BIN)/python -m pytest -q -x -m "not slow and not s3 and not postgres and not subprocess"

test: install
	$(BIN)/python -m pytest -q

docs: $(VENV)/.docs-installed
	$(BIN)/mkdocs build --strict --site-dir site

$(VENV)/.docs-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[docs]'
	touch $@

# Lint: the formatting check, ruff's rules and mypy (strict for warehouse.core and warehouse.manifest),
# all configured in pyproject.toml.
lint: install format-check
	$(BIN)/ruff check .
	$(BIN)/mypy warehouse

format-check: install
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/warehouse bench --scale medium --out bench-results.json
	$(BIN)/python -m benchmarks.s3 --commits 50 --files 10000 --out bench-s3.json
	$(BIN)/python -m benchmarks.agent_state --out bench-agent-state.json
	$(BIN)/python -m benchmarks.compaction --out bench-compaction.json
	$(BIN)/python -m benchmarks.manifest --out bench-manifest.json
	$(BIN)/python -m benchmarks.imports --out bench-imports.json
	$(BIN)/python -m benchmarks.analytics --executions 200000 --out bench-analytics.json
	$(BIN)/python -m benchmarks.keys --executions 200000 --out bench-keys.json
	$(BIN)/python -m benchmarks.publication --commits 1000 --out bench-publication.json
	$(BIN)/python -m benchmarks.publication_long_log --commits 10000 --out bench-long-log.json

torture: install
	$(BIN)/python tests/torture.py --kills 100

clean:
	rm -rf $(VENV) $(DEMO_URL) .pytest_cache site
