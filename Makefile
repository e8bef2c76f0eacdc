# Every target creates .venv and installs the project when missing, so each works first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint run bench soak fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kpibot demo --out demo-out

lint: $(STAMP)
	$(BIN)/ruff check bot kpis storage tests
	$(BIN)/mypy kpis storage bot

test: lint
	$(BIN)/python -m pytest -q

run: $(STAMP)
	$(BIN)/kpibot serve

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache .hypothesis

fuzz: $(STAMP)
	KPIBOT_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/test_hostile.py

# Longer fault runs (10 kill -9 rounds, PostgreSQL kill rounds and black hole when
# KPIBOT_TEST_POSTGRES_URL is set) and the load benchmarks against real `kpibot serve` processes.
soak: $(STAMP)
	KPIBOT_SOAK=1 $(BIN)/python -m pytest -q tests/test_faults.py
	$(BIN)/python -m bench --only load --only load-pg2
