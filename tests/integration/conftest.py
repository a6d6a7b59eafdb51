"""Fixtures for integration tests: the agent's real pipeline against the sandbox over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from agent.sandbox.harness import Harness


@pytest.fixture
def harness(sandbox: Any) -> Harness:
    return Harness(sandbox)
