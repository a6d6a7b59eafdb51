"""The agent makes the fewest AWS calls ECS allows (issue 8), counted through botocore events.

A no-op tick: ceil(N/10) DescribeServices and at most one call per other resource kind, no task-definition
read. An image bump of N services: exactly N RegisterTaskDefinition + N UpdateService and at most 0.2 N
reads beyond a no-op tick's. A revert reuses the earlier revisions: nothing registered.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.manifests.tree import DirTree
from agent.reconcile import Reconciler
from agent.sandbox.harness import FakeClock, write, write_services

N = 30
CLUSTER = "floor"


def _manifests(root: Path, tag: str, n: int = N, cluster: str = CLUSTER) -> None:
    """``n`` services, each with its own task-definition family, all running image ``:tag``."""
    write_services(root, tag, n, cluster)


def _reads(counts: dict[str, int]) -> int:
    return sum(n for k, n in counts.items() if k.split(".", 1)[1].startswith(("Describe", "List", "Get")))


class Agent:
    """A reconciler on the sandbox with its own call counter; pacing lifted (the sandbox has no limits)."""

    def __init__(self, sandbox, **kwargs) -> None:
        self.aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        self.reconciler = Reconciler(self.aws, pacer=kwargs.pop("pacer", Pacer(limits={})), **kwargs)

    def tick(self, root: Path) -> dict[str, int]:
        """One tick; the calls it made, by ``service.Operation``."""
        self.aws.counter.reset()
        self.reconciler.tick(DirTree(root), "0" * 40)
        return dict(self.aws.counter.counts)


def test_no_op_tick_bump_and_revert_cost_the_floor(sandbox, tmp_path: Path) -> None:
    """No-op: ceil(N/10) DescribeServices + one DescribeClusters, nothing else. Bump: N registrations + N
    updates and at most 0.2 N extra reads, none on the following tick. Revert: N updates, 0 registered."""
    agent = Agent(sandbox)
    _manifests(tmp_path, "1")
    first = agent.tick(tmp_path)
    assert first["ecs.RegisterTaskDefinition"] == N and first["ecs.CreateService"] == N

    no_op = agent.tick(tmp_path)
    assert no_op == {"ecs.DescribeServices": math.ceil(N / 10), "ecs.DescribeClusters": 1}
    floor = _reads(no_op)

    _manifests(tmp_path, "2")
    bump = agent.tick(tmp_path)
    assert agent.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": N, "ecs.UpdateService": N}
    assert _reads(bump) - floor <= 0.2 * N, bump
    assert agent.tick(tmp_path) == no_op  # the new revisions are known: no DescribeTaskDefinition

    _manifests(tmp_path, "1")  # a revert: every service goes back to the revision it ran before
    revert = agent.tick(tmp_path)
    assert agent.aws.counter.mutating() == {"ecs.UpdateService": N}
    assert _reads(revert) - floor <= 0.2 * N, revert
    assert agent.tick(tmp_path) == no_op


def test_a_restarted_agent_still_reuses_on_revert(sandbox, tmp_path: Path) -> None:
    """An agent that has never seen the earlier revisions (a restart) finds them by their content-hash
    tag: the revert registers nothing, and its look-back happens once per family, not on every tick."""
    cluster, n = "restart", 5
    _manifests(tmp_path, "1", n, cluster)
    Agent(sandbox).tick(tmp_path)
    _manifests(tmp_path, "2", n, cluster)
    Agent(sandbox).tick(tmp_path)

    fresh = Agent(sandbox)
    _manifests(tmp_path, "1", n, cluster)
    revert = fresh.tick(tmp_path)
    assert fresh.aws.counter.mutating() == {"ecs.UpdateService": n}
    assert revert["ecs.ListTaskDefinitions"] == n

    _manifests(tmp_path, "3", n, cluster)  # new content after the look-back: no read to decide
    bump = fresh.tick(tmp_path)
    assert fresh.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": n, "ecs.UpdateService": n}
    assert "ecs.ListTaskDefinitions" not in bump


def test_services_sharing_a_family_register_it_once(sandbox, tmp_path: Path) -> None:
    """Three services of one family: one RegisterTaskDefinition, three UpdateService."""
    write(tmp_path, "td.json", {
        "family": "shared", "networkMode": "bridge", "requiresCompatibilities": ["EC2"],
        "containerDefinitions": [{"name": "app", "image": "repo/app:1", "memory": 128}],
    })  # fmt: skip
    sandbox.client("ecs").create_cluster(clusterName="shared")
    write(tmp_path, "services.yaml", "---\n".join(
        "apiVersion: ecs-gitops/v1\nkind: Service\n"
        f"metadata: {{name: s{i}}}\nspec: {{cluster: shared, taskDefinition: td.json, desiredCount: 1, "
        "launchType: EC2}\n"
        for i in range(3)
    ))  # fmt: skip
    agent = Agent(sandbox)
    agent.tick(tmp_path)
    assert agent.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": 1, "ecs.CreateService": 3}
    write(tmp_path, "td.json", (tmp_path / "td.json").read_text().replace("app:1", "app:2"))
    agent.tick(tmp_path)
    assert agent.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": 1, "ecs.UpdateService": 3}


@pytest.mark.parametrize("operation", ["RegisterTaskDefinition", "UpdateService"])
def test_services_roll_out_concurrently(sandbox, tmp_path: Path, operation: str) -> None:
    """With concurrency 6, six services' calls are in flight at once: each waits at a barrier of six
    parties before its call, which only passes if all six got there (a sequential loop would break it)."""
    cluster, n = f"par{operation[:3].lower()}", 6
    agent = Agent(sandbox)
    agent.reconciler.concurrency = n
    _manifests(tmp_path, "1", n, cluster)
    agent.tick(tmp_path)

    barrier = threading.Barrier(n, timeout=30)
    in_flight, peak, lock = [0], [0], threading.Lock()

    def before_call(api: str, _change) -> None:
        if api != operation:
            return
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        barrier.wait()  # raises BrokenBarrierError (and fails the tick) unless all n arrive together
        with lock:
            in_flight[0] -= 1

    agent.reconciler.executor.before_call = before_call
    _manifests(tmp_path, "2", n, cluster)
    agent.tick(tmp_path)
    assert agent.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": n, "ecs.UpdateService": n}
    assert peak[0] == n


def test_a_rollout_is_paced_at_ecs_limits_on_a_fake_clock(sandbox, tmp_path: Path) -> None:
    """25 new revisions with the default limits (20 burst, then 1 per s) and 8 threads: the last
    registration is reserved 5 s after the burst; the 25 UpdateService fit in their burst of 50."""
    cluster, n = "paced", 25
    clock = FakeClock()
    waits: list[tuple[float, float]] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:  # the clock stands still: each wait is the reservation itself
        with lock:
            waits.append((clock.monotonic(), seconds))

    agent = Agent(sandbox, pacer=Pacer(clock=clock.monotonic, sleep=sleep))
    _manifests(tmp_path, "1", n, cluster)
    agent.tick(tmp_path)  # 25 registrations + 25 creations
    assert sorted(w for _, w in waits) == [float(s) for s in range(1, 6)]

    waits.clear()
    clock.advance(60)  # the buckets refill
    _manifests(tmp_path, "2", n, cluster)
    agent.tick(tmp_path)
    assert agent.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": n, "ecs.UpdateService": n}
    assert sorted(w for _, w in waits) == [float(s) for s in range(1, 6)]
