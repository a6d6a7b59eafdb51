"""Shared fixtures. Keep each fixture small; append new ones below."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from agent.sandbox.server import Sandbox

REPO_ROOT = Path(__file__).resolve().parent.parent
SANDBOX_SEED = REPO_ROOT / "manifests-example" / "sandbox-seed.yaml"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """A started sandbox seeded from manifests-example/sandbox-seed.yaml, shared by one test module.

    Module scope, not session: only one Sandbox may run per process, and some modules start their
    own. Tests sharing it should use names of their own (or call ``sandbox.reset()`` and re-seed).
    """
    from agent.sandbox.server import Sandbox

    with Sandbox() as running:
        running.seed(SANDBOX_SEED)
        yield running


@pytest.fixture(scope="module")
def sim_sandbox() -> Iterator[Sandbox]:
    """Like ``sandbox``, but its simulator runs on a manual clock (2 s per task start) that tests advance,
    from ``CALM_START`` (no window of manifests-example open), so a story is the same on any date.

    Tests sharing it should use names of their own; time only moves when a test advances it.
    """
    from agent.sandbox.harness import CALM_START
    from agent.sandbox.server import Sandbox
    from agent.sandbox.simulator import SandboxClock

    with Sandbox(clock=SandboxClock(manual=True, start=CALM_START), task_start_seconds=2.0) as running:
        running.seed(SANDBOX_SEED)
        yield running


# -- IAM policy coverage (tests/test_iam_policy.py) -------------------------------------------------------
# agent.aws.clients records every AWS operation the agent's own clients call, process-wide. The coverage
# test compares that record with the policy agent/aws/policy.py generates, so it runs after every other
# test; after the whole suite (which these hooks find out) it also checks tests/iam-operations.txt, the
# record it uses when it runs on its own.
#
# `make test` runs the suite in parallel (pytest-xdist: one process per worker), then this module on its own:
# with ECS_GITOPS_OPERATIONS_DIR set, every session writes what its process recorded there when it ends
# (``<pid>.ops``, plus ``whole`` when it ran every other test file unfiltered), and ``operations_called``
# and ``whole_suite`` read those files too.

IAM_POLICY_TEST = "test_iam_policy.py"
_WHOLE_SUITE = pytest.StashKey[bool]()
_WHOLE_BUT_IAM = pytest.StashKey[bool]()
_DESELECTED = pytest.StashKey[int]()


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        config = items[0].config
        config.stash[_DESELECTED] = config.stash.get(_DESELECTED, 0) + len(items)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the IAM coverage test to the end, and note whether every test of the suite is selected."""
    last = [item for item in items if item.path.name == IAM_POLICY_TEST]
    items[:] = [item for item in items if item.path.name != IAM_POLICY_TEST] + last
    tests_dir = Path(__file__).resolve().parent
    every_file = {p.resolve() for p in tests_dir.rglob("test_*.py")}
    collected = {Path(item.path).resolve() for item in items}
    unfiltered = (
        not config.stash.get(_DESELECTED, 0)
        and not config.getoption("keyword")
        and not config.getoption("markexpr")
        and not any("::" in arg for arg in config.args)
    )
    config.stash[_WHOLE_SUITE] = collected == every_file and unfiltered
    config.stash[_WHOLE_BUT_IAM] = unfiltered and collected == {
        p for p in every_file if p.name != IAM_POLICY_TEST
    }


_OPERATIONS_DIR = "ECS_GITOPS_OPERATIONS_DIR"


def pytest_sessionfinish(session: pytest.Session) -> None:
    folder = os.environ.get(_OPERATIONS_DIR)
    if not folder or not hasattr(session, "items"):  # not asked, or the xdist controller (no agent calls)
        return
    from agent.aws.clients import OPERATIONS_CALLED

    Path(folder, f"{os.getpid()}.ops").write_text("\n".join(sorted(OPERATIONS_CALLED)))
    if session.config.stash.get(_WHOLE_BUT_IAM, False):
        Path(folder, "whole").write_text("every test file but the IAM coverage test ran, unfiltered\n")


@pytest.fixture(scope="session")
def operations_called() -> set[str]:
    """Every AWS operation the agent's own clients called: in this process, and in the earlier sessions
    that wrote to ECS_GITOPS_OPERATIONS_DIR (the parallel run of `make test`)."""
    from agent.aws.clients import OPERATIONS_CALLED

    called = set(OPERATIONS_CALLED)
    folder = os.environ.get(_OPERATIONS_DIR)
    for record in Path(folder).glob("*.ops") if folder else ():
        called.update(record.read_text().split())
    return called


@pytest.fixture(scope="session")
def whole_suite(request: pytest.FixtureRequest) -> bool:
    """True when this session runs every test of the suite (no file, -k, -m or node-id selection), or runs
    the IAM coverage test after a session that ran every other test file (``whole`` in
    ECS_GITOPS_OPERATIONS_DIR)."""
    if request.config.stash.get(_WHOLE_SUITE, False):
        return True
    folder = os.environ.get(_OPERATIONS_DIR)
    only_iam = all(item.path.name == IAM_POLICY_TEST for item in request.session.items)
    return bool(folder) and only_iam and Path(folder, "whole").is_file()
