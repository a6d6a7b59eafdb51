# Every target creates .venv and installs what it needs, so a fresh clone needs nothing else: the agent,
# its sandbox extra (moto: demo, bench and most tests run on it) and the test tools.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint fuzz bench lock clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "Installing ecs-gitops and its test and sandbox dependencies into $(VENV) (a few minutes the first time)"
	$(BIN)/python -m pip install -e '.[test,sandbox]'
	touch $@

.venv: $(VENV)/.installed

demo: .venv
	$(BIN)/python -m agent.sandbox.demo

lint: .venv
	$(BIN)/lint-imports
	$(BIN)/ruff check agent tests

# npm tools (GitHub's OpenAPI description + prism) for the commit-status contract test; skipped without npm.
# The suite runs in parallel, a test file per worker (pytest-xdist, one worker per core); the IAM coverage
# test then runs on its own, reading the operations each worker recorded (see tests/conftest.py), and
# checks tests/iam-operations.txt, its record for running alone, is current
# (ECS_GITOPS_WRITE_OPERATIONS=1 make test rewrites it).
OPERATIONS := .pytest-operations
test: lint
	bash .ci/npm-tools.sh
	rm -rf $(OPERATIONS) && mkdir -p $(OPERATIONS)
	ECS_GITOPS_OPERATIONS_DIR=$(OPERATIONS) $(BIN)/pytest -n auto --dist loadfile --ignore=tests/test_iam_policy.py
	ECS_GITOPS_OPERATIONS_DIR=$(OPERATIONS) $(BIN)/pytest tests/test_iam_policy.py

# Hostile-input fuzzing (tests/fuzz): hypothesis profile "fuzz", 10,000 random examples per target
# (FUZZ_EXAMPLES=N changes that); `make test` runs the same targets with 50 derandomised examples each.
fuzz: .venv
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/fuzz -q --hypothesis-show-statistics

# BENCH_ARGS=--peers adds the side-by-side with fabfuel ecs-deploy (docs/bench).
bench: .venv
	$(BIN)/python -m pip install --quiet -e '.[test,sandbox,bench]'
	$(BIN)/python -m agent.sandbox.bench $(BENCH_ARGS)

# requirements.lock: the runtime dependencies (no extras) resolved in a fresh virtualenv, which the
# Dockerfile installs in a layer of its own. Run after changing [project].dependencies.
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet .
	{ sed -n '/^#/p' requirements.lock; build/lock-venv/bin/python -m pip freeze --exclude ecs-gitops; } \
	  > requirements.lock.new && mv requirements.lock.new requirements.lock
	rm -rf build/lock-venv

clean:
	rm -rf $(VENV) build *.egg-info
