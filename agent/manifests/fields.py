"""Facts about ECS's request shapes that both the manifest checks and the planner need.

The checks (agent.manifests.checks) refuse what the planner could not send; the planner (agent.plan)
builds the requests. Keeping these here lets the planner depend on the manifests, never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Fields DescribeTaskDefinition adds that RegisterTaskDefinition does not take: a task-definition file
# copied from `aws ecs describe-task-definition` may hold them; they are tolerated and dropped.
READ_ONLY_FIELDS = (
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
)

# The CreateService request fields a Service manifest's spec passes through as they are.
SERVICE_REQUEST_FIELDS = (
    "serviceName",
    "taskDefinition",
    "availabilityZoneRebalancing",
    "loadBalancers",
    "serviceRegistries",
    "desiredCount",
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "role",
    "deploymentConfiguration",
    "placementConstraints",
    "placementStrategy",
    "networkConfiguration",
    "healthCheckGracePeriodSeconds",
    "schedulingStrategy",
    "deploymentController",
    "tags",
    "enableECSManagedTags",
    "propagateTags",
    "enableExecuteCommand",
    "serviceConnectConfiguration",
    "volumeConfigurations",
    "vpcLatticeConfigurations",
    "monitoring",
)


def _spec(manifest: Any) -> Mapping[str, Any]:
    spec = getattr(manifest, "spec", manifest)
    return spec if isinstance(spec, Mapping) else {}


def explicit_wave(manifest: Any) -> int:
    """A service's ``wave`` (0 when unset)."""
    wave = _spec(manifest).get("wave", 0)
    return wave if isinstance(wave, int) and not isinstance(wave, bool) else 0
