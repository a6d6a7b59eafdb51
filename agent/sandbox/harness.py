"""The agent's plan and tick on a sandbox, a fake clock and file helpers, for tests, the demo and the
bench: ``Harness``, ``FakeClock``, ``write``, ``copy_example`` and the paths they use (``EXAMPLE``,
``CORPUS``), and ``CALM_START``, a start time at which no example window is open."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.errors import InvalidInput
from agent.manifests.tree import DirTree
from agent.reconcile import PlanResult, Reconciler, TickResult
from agent.store.sqlite import SqliteStore

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "manifests-example"
CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "taskdefs"
# A Tuesday, 12:00 in Berlin, in June: no window of manifests-example is open (weekday-nights opens at
# 22:00, year-end-freeze on 20 December), so a test whose clock starts here gets the same story on any
# date. (The demo starts its sandbox clock here too.)
CALM_START = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)


def copy_example(dest: Path) -> None:
    """manifests-example copied into ``dest``, its services no longer in ``year-end-freeze``: for tests
    that deploy it on the real clock (a daemon's scheduler), which would otherwise stall from 20 December
    to 3 January. The freeze itself is tested on pinned clocks."""
    shutil.copytree(EXAMPLE, dest, dirs_exist_ok=True)
    for service in (dest / "services").glob("*.yaml"):
        lines = []
        for line in service.read_text().splitlines(keepends=True):
            found = re.fullmatch(r"(\s*windows: )\[(.*)\]\n", line)
            if found:
                kept = [w.strip() for w in found[2].split(",") if w.strip() != "year-end-freeze"]
                line = f"{found[1]}[{', '.join(kept)}]\n" if kept else ""
            lines.append(line)
        service.write_text("".join(lines))


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
    """The agent's plan and tick on one sandbox, sharing one AWS call counter.

    ``apply`` goes through ``Reconciler.tick``, the step ``ecs-gitops run`` and ``apply`` take each time,
    with a state store of its own, on the sandbox's clock: a rollout that asks to be woken later has the
    sandbox's clock skipped to that time, so bakes and windows pass at once (pacing is lifted: the sandbox
    has no API limits)."""

    MAX_TICKS = 200

    def __init__(self, sandbox: Any, config: Any = None) -> None:
        self.sandbox = sandbox
        self.aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        self.clock = sandbox.simulator.clock
        self.store = SqliteStore(Path(tempfile.mkdtemp(prefix="ecs-gitops-harness-")) / "state.db")
        self.reconciler = Reconciler(
            self.aws, config, store=self.store, clock=self.clock.now, pacer=Pacer(limits={})
        )
        self.commits = 0
        self.last: TickResult | None = None

    def plan(self, root: Path) -> PlanResult:
        return self.reconciler.plan(DirTree(root))

    def apply(self, root: Path) -> PlanResult:
        """Plan ``root``, then tick it as a new commit until every rollout has settled; the plan made
        before the first tick is returned, the last tick is ``self.last``. Raises ``InvalidInput`` for
        invalid manifests, as the tick reports them."""
        planned = self.plan(root)
        self.commits += 1
        sha = f"{self.commits:040x}"  # each apply is a commit of its own
        for _ in range(self.MAX_TICKS):
            self.last = self.reconciler.tick(DirTree(root), sha)
            if self.last.outcome == "invalid":
                raise InvalidInput(list(self.last.problems))
            if self.last.wake_at is None:
                return planned
            wait = (self.last.wake_at - self.clock.now()).total_seconds()
            if wait > 0:
                self.clock.advance(wait)
        raise AssertionError(f"still rolling out after {self.MAX_TICKS} ticks: {self.last.statuses}")


def write(root: Path, rel: str, content: Any) -> Path:
    """Write ``content`` (text, or JSON for anything else) at ``root/rel``, creating folders."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


def write_services(root: Path, tag: str, n: int, cluster: str) -> None:
    """A Cluster manifest and ``n`` services of ``cluster`` at ``root``, each with a task-definition family
    of its own (``<cluster>000``, ...), all running image ``repo/app:<tag>``."""
    write(
        root,
        "cluster.yaml",
        f"apiVersion: ecs-gitops/v1\nkind: Cluster\nmetadata: {{name: {cluster}}}\nspec: {{}}\n",
    )
    docs = []
    for i in range(n):
        family = f"{cluster}{i:03d}"
        write(root, f"taskdefs/{family}.json", {
            "family": family, "networkMode": "bridge", "requiresCompatibilities": ["EC2"],
            "containerDefinitions": [{"name": "app", "image": f"repo/app:{tag}", "memory": 128}],
        })  # fmt: skip
        docs.append(
            f"apiVersion: ecs-gitops/v1\nkind: Service\nmetadata: {{name: {family}}}\n"
            f"spec: {{cluster: {cluster}, taskDefinition: taskdefs/{family}.json, desiredCount: 1, "
            "launchType: EC2}\n"
        )
    write(root, "services.yaml", "---\n".join(docs))
