"""Shared fixtures. Keep each fixture small; append new ones below."""

from __future__ import annotations

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
    """Like ``sandbox``, but its simulator runs on a manual clock (2 s per task start) that tests advance.

    Tests sharing it should use names of their own; time only moves when a test advances it.
    """
    from agent.sandbox.server import Sandbox
    from agent.sandbox.simulator import SandboxClock

    with Sandbox(clock=SandboxClock(manual=True), task_start_seconds=2.0) as running:
        running.seed(SANDBOX_SEED)
        yield running
