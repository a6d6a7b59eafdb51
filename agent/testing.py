"""Fakes and fixtures for tests, ours and other projects': the agent's plan/apply path on a sandbox,
a fake clock, and file helpers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.aws.clients import Aws
from agent.aws.executing import Applied, Executor
from agent.aws.pacing import Pacer
from agent.manifests.tree import DirTree
from agent.reconcile import PlanResult, Reconciler

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "manifests-example"
CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "taskdefs"


class FakeClock:
    """Time that moves only when told: ``now()`` for datetimes, ``monotonic()`` and ``sleep()`` for pacing."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    sleep = advance


class Harness:
    """The agent's plan/apply path on one sandbox, sharing one AWS call counter."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        self.reconciler = Reconciler(self.aws)

    def plan(self, root: Path) -> PlanResult:
        return self.reconciler.plan(DirTree(root))

    def apply(self, root: Path) -> PlanResult:
        """Plan ``root`` and execute every change (pacing lifted: the sandbox has no API limits)."""
        result = self.plan(root)
        self.execute(result)
        return result

    def execute(self, result: PlanResult) -> Applied:
        return Executor(self.aws, Pacer(limits={})).execute(result.plan)


def write(root: Path, rel: str, content: Any) -> Path:
    """Write ``content`` (text, or JSON for anything else) at ``root/rel``, creating folders."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path
