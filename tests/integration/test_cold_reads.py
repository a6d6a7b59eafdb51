"""A cold agent (no state store) reads the task definitions of ``READ_THREADS`` families at once: the same
reads, the same observation and the same plan as one family at a time (calls counted through botocore
events), and an interrupt stops the reads with no thread left running."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.aws import observing
from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.errors import Interrupted
from agent.manifests.tree import DirTree
from agent.reconcile import Reconciler
from agent.sandbox.harness import write_services

N = 12
REVISIONS = 4  # revisions of each family before the bump that is planned
CLUSTER = "coldreads"


def _manifests(root: Path, tag: str) -> None:
    """``N`` services, each with its own task-definition family, all running image ``:tag``."""
    write_services(root, tag, N, CLUSTER)


@pytest.fixture(scope="module")
def bumped(sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose N services have run ``REVISIONS`` images, holding a bump to one more."""
    root = tmp_path_factory.mktemp("cold-reads")
    deployer = Reconciler(Aws(region=sandbox.region, endpoint_url=sandbox.endpoint), pacer=Pacer(limits={}))
    for tag in range(1, REVISIONS + 1):
        _manifests(root, str(tag))
        deployer.tick(DirTree(root), "0" * 40)
    _manifests(root, str(REVISIONS + 1))
    return root


class Cold:
    """A new process's reconciler (no store: its revision index starts empty), its calls counted."""

    def __init__(self, sandbox) -> None:
        self.aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        self.reconciler = Reconciler(self.aws, pacer=Pacer(limits={}))
        self.observer = self.reconciler.lanes.home.observer

    def on(self, event: str, handler) -> None:
        self.aws.client("ecs").meta.events.register(event, handler)


def _cold_plan(sandbox, root: Path, monkeypatch: pytest.MonkeyPatch, threads: int):
    monkeypatch.setattr(observing, "READ_THREADS", threads)
    cold = Cold(sandbox)
    in_flight, most, lock = [0], [0], threading.Lock()

    def started(**_) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])

    def ended(**_) -> None:
        with lock:
            in_flight[0] -= 1

    barrier, arrived = threading.Barrier(threads, timeout=20), [0]

    def gathered(**_) -> None:
        """The first ``threads`` describes wait for one another: they can only meet if all are in flight."""
        with lock:
            arrived[0] += 1
            first = arrived[0] <= threads
        if first:
            barrier.wait()

    for operation in ("DescribeTaskDefinition", "ListTaskDefinitions"):
        cold.on(f"before-call.ecs.{operation}", started)
        cold.on(f"after-call.ecs.{operation}", ended)
    cold.on("before-call.ecs.DescribeTaskDefinition", gathered)
    result = cold.reconciler.plan(DirTree(root))
    calls = {k: n for k, n in cold.aws.counter.counts.items() if k.startswith("ecs.")}
    return result, calls, most[0], _index_of(cold.observer.index)


def _index_of(index) -> dict[str, tuple[bool, int, list[str | None]]]:
    """Per family: accounted for to its newest revision, that newest number, each revision's hash."""
    families = [f"{CLUSTER}{i:03d}" for i in range(N)]
    return {
        f: (index.complete(f), index.newest(f), [index.hash_of(_arn(f, r)) for r in range(1, REVISIONS + 1)])
        for f in families
    }


def _arn(family: str, revision: int) -> str:
    return f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:{revision}"


def test_a_cold_agent_reads_families_at_once_with_the_same_calls_and_plan(
    sandbox, bumped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning the bump cold with READ_THREADS threads and with one makes exactly the same reads (per
    family: the running revision described, one ListTaskDefinitions, each other revision described), the
    same task definitions observed, index and plan; with READ_THREADS, that many reads are in flight at
    once."""
    threads = observing.READ_THREADS
    assert threads > 1
    one, one_calls, one_most, one_index = _cold_plan(sandbox, bumped, monkeypatch, 1)
    many, many_calls, many_most, many_index = _cold_plan(sandbox, bumped, monkeypatch, threads)
    expected = {
        "ecs.DescribeClusters": 1,
        "ecs.DescribeServices": math.ceil(N / 10),
        "ecs.DescribeTaskDefinition": N * REVISIONS,
        "ecs.ListTaskDefinitions": N,
    }
    assert one_calls == expected
    assert many_calls == expected
    assert (one_most, many_most) == (1, threads)
    for field in ("task_definitions", "revisions_by_hash", "latest_revision", "echoed"):
        assert getattr(many.observed, field) == getattr(one.observed, field), field
    assert len(many.observed.task_definitions) == N  # the running revisions (the others are indexed)
    assert len(many.observed.revisions_by_hash) == 0  # the new image is in no revision: it is registered
    assert many.plan == one.plan
    assert many_index == one_index
    assert all(
        complete and newest == REVISIONS and all(hashes) for complete, newest, hashes in many_index.values()
    )
    changing = [c for c in many.plan.changes if c.changes_anything]
    assert len(changing) == 2 * N  # a revision to register and an update, per service


def test_a_cold_plan_command_makes_the_same_reads(sandbox, bumped: Path) -> None:
    """``ecs-gitops plan`` in a new process with no data dir (the user's cold path, READ_THREADS at once)
    serves exactly the reads one family at a time makes, and shows the bump: 2 per service to change."""
    cli = Path(sys.executable).with_name("ecs-gitops")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_GITOPS_"))}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
    before = dict(sandbox.faults.served)
    proc = subprocess.run(
        [str(cli), "plan", "--repo", str(bumped), "--endpoint-url", sandbox.endpoint,
         "--region", sandbox.region],
        capture_output=True, text=True, env=env, cwd=bumped, timeout=120, check=False,
    )  # fmt: skip
    served = {op: n - before.get(op, 0) for op, n in sandbox.faults.served.items() if n != before.get(op, 0)}
    assert proc.returncode == 2, proc.stderr
    assert f"{N} to update, {N} to register" in proc.stdout
    assert served == {
        "DescribeClusters": 1,
        "DescribeServices": math.ceil(N / 10),
        "DescribeTaskDefinition": N * REVISIONS,
        "ListTaskDefinitions": N,
    }


def test_an_interrupt_stops_the_reads_and_leaves_no_thread(sandbox, bumped: Path) -> None:
    """A checkpoint that raises Interrupted during the task-definition reads stops them: Interrupted
    propagates out of observe, the remaining reads are not made and no reading thread is left."""
    cold = Cold(sandbox)
    reads = [0]

    def counted(**_) -> None:
        reads[0] += 1

    cold.on("before-call.ecs.DescribeTaskDefinition", counted)
    cold.on("before-call.ecs.ListTaskDefinitions", counted)
    checks = [0]

    def checkpoint() -> None:
        checks[0] += 1
        if reads[0] >= N + 3:  # every running revision described, and a few look-back reads
            raise Interrupted("a newer event asked for a tick")

    cold.observer.checkpoint = checkpoint
    desired = cold.reconciler.desired.load(DirTree(bumped), cold.reconciler.config)
    resolved = cold.reconciler.lanes.home.resolver.resolve(desired)
    with pytest.raises(Interrupted):
        cold.observer.observe(resolved)
    assert N + 3 <= reads[0] < N * (REVISIONS + 1)
    assert reads[0] <= N + 3 + observing.READ_THREADS
    assert not [t for t in threading.enumerate() if t.name.startswith("observe")]
