"""Every kind of ECS write the agent can make, driven through the plan/apply path on the sandbox: cluster
settings, capacity providers and tags, capacity-provider updates, and task-set replacement.

Besides checking that each change lands, this is what makes the IAM policy coverage test
(tests/test_iam_policy.py) see every write action the agent's code can call.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agent.sandbox.harness import EXAMPLE, Harness


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))


def test_cluster_capacity_provider_tag_and_task_set_changes_are_applied(sandbox, tmp_path: Path) -> None:
    """Changing cluster settings, default provider strategy and tags, a capacity provider's scaling and an
    agent-engine service's image each apply with their own ECS call, and the next plan is empty."""
    sandbox.reset()
    sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
    harness = Harness(sandbox)
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root)
    hooks = sandbox.serve_hooks(0)  # web's canary calls its smoke-test hook: the sandbox answers it
    _edit(root, "strategies/strategies.yaml", "http://127.0.0.1:8099/hooks/", hooks)
    harness.apply(root)

    _edit(root, "platform/clusters.yaml", "value: enabled", "value: disabled")
    _edit(root, "platform/clusters.yaml", "weight: 1", "weight: 2")
    _edit(root, "platform/clusters.yaml", "  tags:\n    team: platform\n", "  tags:\n    owner: sre\n")
    _edit(root, "platform/capacity-providers.yaml", "targetCapacity: 90", "targetCapacity: 80")
    _edit(root, "taskdefs/web.json", "nginx:1.27", "nginx:1.28")
    harness.aws.counter.reset()
    harness.apply(root)
    calls = harness.aws.counter.mutating()
    for operation in (
        "UpdateClusterSettings",
        "PutClusterCapacityProviders",
        "TagResource",
        "UntagResource",
        "UpdateCapacityProvider",
        "RegisterTaskDefinition",
        "CreateTaskSet",
        "UpdateServicePrimaryTaskSet",
        "DeleteTaskSet",
    ):
        assert calls.get(f"ecs.{operation}"), (operation, calls)
    assert harness.last is not None and harness.last.outcome != "failed", harness.last.statuses
    assert not harness.plan(root).plan.has_changes
