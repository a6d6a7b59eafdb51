"""A no-op tick decodes none of ECS's answers: byte for byte the last tick's, each is the result parsed then
(agent/aws/parsing.py), and the plan memo finds every unchanged service's description by identity."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

from agent.aws import parsing
from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.manifests.tree import DirTree
from agent.reconcile import Reconciler
from agent.reconcile.results import PlanResult
from agent.sandbox.harness import write_services

N = 25
CLUSTER = "remembered"


class Keeping(Reconciler):
    """The reconciler the daemon runs, keeping each tick's plan result (as agent.daemon's does)."""

    last: PlanResult

    def plan(self, tree):  # type: ignore[no-untyped-def]
        self.last = super().plan(tree)
        return self.last


def test_a_no_op_tick_decodes_no_answer_and_reuses_each_description(sim_sandbox, tmp_path: Path) -> None:
    """After a deploy, a no-op tick makes its DescribeServices and DescribeClusters calls but converts no
    answer, and every service's description is the very object the tick before planned with; a service
    ECS changes in between is parsed anew."""
    sandbox = sim_sandbox
    aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
    reconciler = Keeping(aws, pacer=Pacer(limits={}))
    write_services(tmp_path, "1", N, CLUSTER)
    reconciler.tick(DirTree(tmp_path), "0" * 40)  # creates every service
    sandbox.simulator.clock.advance(60)  # their tasks start
    assert reconciler.tick(DirTree(tmp_path), "0" * 40).outcome == "unchanged"  # every one deployed
    before = dict(reconciler.last.observed.services)

    converted = mock.Mock(wraps=parsing.Converters.get)
    with mock.patch.object(parsing.Converters, "get", lambda self, shape: converted(self, shape)):
        aws.counter.reset()
        result = reconciler.tick(DirTree(tmp_path), "0" * 40)
    assert result.outcome == "unchanged"
    assert aws.counter.counts == {"ecs.DescribeServices": 3, "ecs.DescribeClusters": 1}
    assert converted.call_count == 0
    after = reconciler.last.observed.services
    assert len(after) == N and all(after[key] is before[key] for key in before)

    # ECS changes one service (a scale-out outside Git): its answer is new bytes, parsed and planned anew.
    sandbox.client("ecs").update_service(cluster=CLUSTER, service=f"{CLUSTER}003", desiredCount=2)
    reconciler.tick(DirTree(tmp_path), "0" * 40)
    changed = reconciler.last.observed.services
    assert changed[(CLUSTER, f"{CLUSTER}003")] is not before[(CLUSTER, f"{CLUSTER}003")]
    assert changed[(CLUSTER, f"{CLUSTER}003")]["desiredCount"] == 2
    assert (
        changed[(CLUSTER, f"{CLUSTER}013")] is before[(CLUSTER, f"{CLUSTER}013")]
    )  # another call's ten, unchanged
