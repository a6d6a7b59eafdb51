"""ECS Managed Instances capacity providers as manifests: planned, created in their cluster, updated in
place (instance requirements and the other updatable fields), and a create-only field explained.

manifests-example/platform/capacity-providers.yaml holds ``prod-managed``: infrastructure role, instance
profile, subnets and security group by name, instance requirements. moto cannot store such a provider;
the sandbox does, in ECS's shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gitops_story import Story

from agent.manifests.tree import DirTree
from agent.plan.render import render_text

PROVIDERS = "platform/capacity-providers.yaml"
TEMPLATE = "/managedInstancesProvider/instanceLaunchTemplate"


@pytest.fixture
def story(sim_sandbox: Any, tmp_path: Path) -> Story:
    return Story(sim_sandbox, tmp_path)


def _provider(story: Story) -> dict[str, Any]:
    out = story.ecs.describe_capacity_providers(
        capacityProviders=["prod-managed"], cluster="prod", include=["TAGS"]
    )
    [provider] = out["capacityProviders"]
    return dict(provider)


def _plan(story: Story) -> Any:
    return story.agent.reconciler.plan(DirTree(story.root)).plan


def test_managed_instances_provider_is_planned_created_and_updated(story: Story) -> None:
    """Create with references resolved; an instance-requirements change is one UpdateCapacityProvider."""
    plan = _plan(story)
    text = render_text(plan)
    assert "+ CapacityProvider prod-managed (create)" in text
    assert text.index("+ Cluster prod (create)") < text.index("+ CapacityProvider prod-managed (create)")
    assert f"    + {TEMPLATE}/instanceRequirements/vCpuCount/max: 8" in text
    create = next(c for c in plan.changes if c.name == "prod-managed").request
    assert create["cluster"] == "prod"
    assert create["managedInstancesProvider"]["infrastructureRoleArn"].endswith(":role/ecsInfrastructureRole")
    assert create["managedInstancesProvider"]["instanceLaunchTemplate"]["ec2InstanceProfileArn"].endswith(
        ":instance-profile/ecsInstanceProfile"
    )

    story.commit("platform and services")
    story.settle()
    provider = _provider(story)
    assert (provider["type"], provider["cluster"], provider["status"]) == (
        "MANAGED_INSTANCES",
        "prod",
        "ACTIVE",
    )
    template = provider["managedInstancesProvider"]["instanceLaunchTemplate"]
    assert template["instanceRequirements"] == {
        "vCpuCount": {"min": 2, "max": 8},
        "memoryMiB": {"min": 4096, "max": 16384},
    }
    assert template["networkConfiguration"]["subnets"][0].startswith("subnet-")
    assert {"key": "team", "value": "platform"} in provider["tags"]
    assert next(c for c in _plan(story).changes if c.name == "prod-managed").action == "no-change"

    story.commit(
        "bigger instances, auto repair",
        {
            PROVIDERS: (
                "        vCpuCount: {min: 2, max: 8}\n        memoryMiB: {min: 4096, max: 16384}\n",
                "        vCpuCount: {min: 2, max: 16}\n        memoryMiB: {min: 4096, max: 32768}\n"
                "        burstablePerformance: excluded\n",
            )
        },
    )
    story.commit(
        "auto repair",
        {
            PROVIDERS: (
                "    infrastructureRole: {name: ecsInfrastructureRole}\n",
                "    infrastructureRole: {name: ecsInfrastructureRole}\n"
                "    autoRepairConfiguration: {actionsStatus: ENABLED}\n",
            )
        },
    )
    plan = _plan(story)
    change = next(c for c in plan.changes if c.name == "prod-managed")
    text = render_text(plan)
    assert "~ CapacityProvider prod-managed\n" in text
    assert f"    ~ {TEMPLATE}/instanceRequirements/vCpuCount/max: 8 -> 16" in text
    assert f'    + {TEMPLATE}/instanceRequirements/burstablePerformance: "excluded"' in text
    assert '    + /managedInstancesProvider/autoRepairConfiguration: {"actionsStatus": "ENABLED"}' in text
    update = change.request["updateCapacityProvider"]
    assert (update["name"], update["cluster"]) == ("prod-managed", "prod")
    assert update["managedInstancesProvider"]["autoRepairConfiguration"] == {"actionsStatus": "ENABLED"}
    assert plan.warnings == ()

    story.aws.counter.reset()
    story.settle()
    assert story.aws.counter.counts["ecs.UpdateCapacityProvider"] == 1
    provider = _provider(story)
    requirements = provider["managedInstancesProvider"]["instanceLaunchTemplate"]["instanceRequirements"]
    assert requirements["vCpuCount"] == {"min": 2, "max": 16}
    assert requirements["burstablePerformance"] == "excluded"
    assert provider["managedInstancesProvider"]["autoRepairConfiguration"] == {"actionsStatus": "ENABLED"}
    assert next(c for c in _plan(story).changes if c.name == "prod-managed").action == "no-change"


def test_a_create_only_field_is_explained_and_not_sent(story: Story) -> None:
    """capacityOptionType cannot be updated: the plan warns, and no UpdateCapacityProvider is sent for it."""
    story.commit("platform and services")
    story.settle()
    story.commit(
        "spot instances",
        {
            PROVIDERS: (
                "      monitoring: BASIC\n",
                "      monitoring: BASIC\n      capacityOptionType: SPOT\n",
            )
        },
    )
    plan = _plan(story)
    change = next(c for c in plan.changes if c.name == "prod-managed")
    assert f'+ {TEMPLATE}/capacityOptionType: "SPOT"' in render_text(plan)
    assert "updateCapacityProvider" not in change.request
    assert plan.warnings == (
        "CapacityProvider prod-managed: capacityOptionType cannot be updated; "
        "requires re-creating the capacity provider",
    )
    story.aws.counter.reset()
    story.settle()
    assert "ecs.UpdateCapacityProvider" not in story.aws.counter.counts
