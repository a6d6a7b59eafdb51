"""Fixtures of the end-to-end tests (helpers in e2e_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import SandboxProcess, start_sandbox


@pytest.fixture(scope="module")
def sandbox_process() -> Iterator[SandboxProcess]:
    """An empty sandbox (no seed) in its own process, shared by one test module."""
    running = start_sandbox("--no-seed")
    try:
        yield running
    finally:
        running.stop()
