"""What the observer saw in ECS, as plain API response dicts (the planner's other input)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Observed:
    """Live state, keyed the way the planner looks it up.

    A key that is present with value ``None`` means "looked, does not exist".
    """

    # (cluster name, service name) -> one entry of DescribeServices' ``services`` (ACTIVE/DRAINING) or None
    services: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    # task-definition ARN -> {"taskDefinition": {...}, "tags": [...]} as DescribeTaskDefinition returns it
    task_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (family, content hash) -> ARN of an ACTIVE revision carrying that hash tag (for reuse and reverts)
    revisions_by_hash: dict[tuple[str, str], str] = field(default_factory=dict)
    # task-definition ARN a service runs -> the fields ECS added when the agent registered that revision,
    # which the normaliser does not explain (agent.plan.taskdefs.echoed_fields); absent when none
    echoed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # family -> ARN of its latest ACTIVE revision (standalone task definitions), or None
    latest_revision: dict[str, str | None] = field(default_factory=dict)
    # cluster name -> DescribeClusters entry (include SETTINGS, TAGS, CONFIGURATIONS) or None
    clusters: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # capacity-provider name -> DescribeCapacityProviders entry (include TAGS) or None
    capacity_providers: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # (cluster name, service name) -> DescribeServices entry of an ACTIVE service tagged
    # ecs-gitops:managed=true that no manifest names (looked for only with sync.prune: the plan deletes them)
    orphans: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
