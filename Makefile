# Every target creates .venv and installs what it needs, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

.venv: $(VENV)/.installed

demo: .venv
	$(BIN)/python -m agent.demo

lint: .venv
	$(BIN)/lint-imports
	$(BIN)/ruff check agent tests

# npm tools (GitHub's OpenAPI description + prism) for the commit-status contract test; skipped without npm.
test: lint
	bash .ci/npm-tools.sh
	$(BIN)/pytest

bench: .venv
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m agent.bench

clean:
	rm -rf $(VENV) build *.egg-info
