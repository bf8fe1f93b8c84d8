# Two commands for a fresh clone:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench vendor catalogues clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py vault/ledger/_walk.c | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed          ## set up and run the narrated demo on a throw-away vault
	$(BIN)/evidence-vault demo

test: $(VENV)/.installed          ## set up and run lint, the type gate and the whole test suite
	$(BIN)/ruff check vault cli tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(VENV)/.installed         ## run the benchmarks (slow; prints ratios)
	$(BIN)/python bench/run_all.py

vendor:                           ## re-fetch the pinned front-end packages into vault/web/static/vendor
	scripts/vendor.sh

catalogues: $(VENV)/.installed    ## re-extract the desk's texts, merge them into the .po files, compile the .mo files
	$(BIN)/pybabel extract -F vault/web/babel.cfg --no-location --omit-header -o vault/web/locale/messages.pot .
	$(BIN)/pybabel update -i vault/web/locale/messages.pot -d vault/web/locale --no-fuzzy-matching
	$(BIN)/pybabel compile -d vault/web/locale --statistics

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
