"""Planning many services costs the fewest calls ECS allows (counted through botocore events)."""

from __future__ import annotations

import math
from pathlib import Path

from agent.sandbox.harness import write

N_SERVICES = 1000
N_FAMILIES = 20


def _generate(root: Path) -> None:
    for f in range(N_FAMILIES):
        write(
            root,
            f"taskdefs/app{f}.json",
            {
                "family": f"app{f}",
                "networkMode": "bridge",
                "requiresCompatibilities": ["EC2"],
                "containerDefinitions": [{"name": "app", "image": f"repo/app{f}:1", "memory": 128}],
            },
        )
    docs = []
    for i in range(N_SERVICES):
        docs.append(
            "apiVersion: ecs-gitops/v1\nkind: Service\n"
            f"metadata: {{name: svc{i:04d}}}\n"
            f"spec: {{cluster: bench, taskDefinition: taskdefs/app{i % N_FAMILIES}.json, "
            "desiredCount: 1, launchType: EC2}\n"
        )
    write(root, "services.yaml", "---\n".join(docs))


def test_planning_1000_services_makes_100_describe_services_and_no_task_definition_read(
    sandbox, harness, tmp_path: Path
) -> None:
    """1,000 services take exactly ceil(1000/10) DescribeServices calls; the agent that registered their
    revisions knows each one's content hash, so neither that plan nor the next reads a task definition."""
    sandbox.client("ecs").create_cluster(clusterName="bench")
    _generate(tmp_path)
    harness.apply(tmp_path)

    harness.aws.counter.reset()
    result = harness.plan(tmp_path)
    counts = harness.aws.counter.counts
    assert not result.plan.has_changes
    assert counts["ecs.DescribeServices"] == math.ceil(N_SERVICES / 10)
    assert counts["ecs.DescribeTaskDefinition"] == 0
    assert counts["ecs.ListTaskDefinitions"] == 0
    assert harness.aws.counter.mutating() == {}

    harness.aws.counter.reset()
    harness.plan(tmp_path)
    assert counts["ecs.DescribeServices"] == math.ceil(N_SERVICES / 10)
    assert counts["ecs.DescribeTaskDefinition"] == 0
