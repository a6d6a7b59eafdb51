"""Read live ECS state for a Desired set with as few calls as ECS allows.

* DescribeServices: 10 services per call (the API's maximum), grouped by cluster.
* DescribeTaskDefinition: once per ARN for the life of the Observer (revisions are immutable).
* DescribeClusters / DescribeCapacityProviders: one call each for all names.
* ListTaskDefinitions: only for a family whose running revision differs from the desired content, to
  find an older revision with the same content (a revert, or a crash after registering) and reuse it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from agent.manifests.model import Desired
from agent.plan.observed import Observed
from agent.plan.taskdefs import HASH_TAG, content_hash

from .errors import translated

SERVICES_PER_CALL = 10
CLUSTERS_PER_CALL = 100
# How many recent revisions of a family are examined when looking for one to reuse.
REUSE_LOOKBACK = 10
_BUILTIN_PROVIDERS = {"FARGATE", "FARGATE_SPOT"}


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _tag(tags: Iterable[dict[str, str]] | None, key: str) -> str | None:
    for t in tags or ():
        if t.get("key") == key:
            return t.get("value")
    return None


def current_task_definition(service: dict[str, Any] | None) -> str | None:
    """The ARN a service runs: its own, or (EXTERNAL controller) its PRIMARY task set's."""
    if not service:
        return None
    if (service.get("deploymentController") or {}).get("type") == "EXTERNAL":
        for ts in service.get("taskSets") or ():
            if ts.get("status") == "PRIMARY":
                return ts.get("taskDefinition")
        return None
    return service.get("taskDefinition")


class Observer:
    """Observes ECS for the planner; keep one per agent so the task-definition cache lasts."""

    def __init__(self, aws: Any) -> None:
        self.ecs = aws.client("ecs")
        self._task_definitions: dict[str, dict[str, Any]] = {}

    def observe(self, desired: Desired, clusters_of: dict[str, str] | None = None) -> Observed:
        """Everything the planner needs for ``desired``.

        ``clusters_of`` maps a service manifest name to its ECS cluster name (defaults to spec.cluster).
        """
        observed = Observed()
        with translated():
            self._clusters(desired, observed)
            self._capacity_providers(desired, observed)
            self._services(desired, observed)
            self._task_definitions_for(desired, observed)
        return observed

    # -- one method per resource kind ------------------------------------------------------------

    def _clusters(self, desired: Desired, observed: Observed) -> None:
        names = sorted({m.spec.get("clusterName", m.name) for m in desired.clusters.values()})
        for batch in chunks(names, CLUSTERS_PER_CALL):
            out = self.ecs.describe_clusters(clusters=batch, include=["SETTINGS", "TAGS", "CONFIGURATIONS"])
            found = {c["clusterName"]: c for c in out.get("clusters", []) if c.get("status") != "INACTIVE"}
            for name in batch:
                observed.clusters[name] = found.get(name)

    def _capacity_providers(self, desired: Desired, observed: Observed) -> None:
        names = sorted(set(desired.capacity_providers) - _BUILTIN_PROVIDERS)
        if not names:
            return
        out = self.ecs.describe_capacity_providers(capacityProviders=names, include=["TAGS"])
        found = {cp["name"]: cp for cp in out.get("capacityProviders", []) if cp.get("status") != "INACTIVE"}
        for name in names:
            observed.capacity_providers[name] = found.get(name)

    def _services(self, desired: Desired, observed: Observed) -> None:
        by_cluster: dict[str, list[str]] = {}
        for m in desired.services.values():
            by_cluster.setdefault(m.spec["cluster"], []).append(m.spec.get("serviceName", m.name))
        for cluster, names in sorted(by_cluster.items()):
            cluster_missing = cluster in observed.clusters and observed.clusters[cluster] is None
            for batch in chunks(sorted(set(names)), SERVICES_PER_CALL):
                found: dict[str, dict[str, Any]] = {}
                if not cluster_missing:
                    try:
                        out = self.ecs.describe_services(cluster=cluster, services=batch, include=["TAGS"])
                    except self.ecs.exceptions.ClusterNotFoundException:
                        out = {}
                    found = {
                        s["serviceName"]: s for s in out.get("services", []) if s.get("status") != "INACTIVE"
                    }
                for name in batch:
                    observed.services[(cluster, name)] = found.get(name)

    def _task_definitions_for(self, desired: Desired, observed: Observed) -> None:
        running: dict[str, str] = {}  # family -> ARN a service runs now
        for m in desired.services.values():
            key = (m.spec["cluster"], m.spec.get("serviceName", m.name))
            arn = current_task_definition(observed.services.get(key))
            family = desired.service_task_family.get(m.name)
            if arn and family:
                observed.task_definitions[arn] = self.describe_task_definition(arn)
                running.setdefault(family, arn)
        for family, td in sorted(desired.task_definitions.items()):
            wanted = content_hash(td.body)
            arn = running.get(family)
            if arn and self._hash_of(observed.task_definitions[arn]) == wanted:
                observed.revisions_by_hash[(family, wanted)] = arn
                continue
            self._find_revision(family, wanted, observed, standalone=family not in running)

    # -- task definitions --------------------------------------------------------------------------

    def describe_task_definition(self, arn: str) -> dict[str, Any]:
        """DescribeTaskDefinition with tags, once per ARN (revisions never change)."""
        if arn not in self._task_definitions:
            out = self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
            self._task_definitions[arn] = {
                "taskDefinition": out["taskDefinition"],
                "tags": out.get("tags", []),
            }
            # Also cache under the canonical ARN, so family:rev and ARN share one entry.
            self._task_definitions[out["taskDefinition"]["taskDefinitionArn"]] = self._task_definitions[arn]
        return self._task_definitions[arn]

    @staticmethod
    def _hash_of(described: dict[str, Any]) -> str:
        return _tag(described.get("tags"), HASH_TAG) or content_hash(described["taskDefinition"])

    def _find_revision(self, family: str, wanted: str, observed: Observed, standalone: bool) -> None:
        """Look back through the family's recent ACTIVE revisions for one with the wanted content."""
        out = self.ecs.list_task_definitions(
            familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=REUSE_LOOKBACK
        )
        arns = [a for a in out.get("taskDefinitionArns", []) if _family_of(a) == family]
        if standalone:
            observed.latest_revision[family] = arns[0] if arns else None
        for i, arn in enumerate(arns):
            described = self.describe_task_definition(arn)
            if standalone and i == 0:
                observed.task_definitions[arn] = described
            if self._hash_of(described) == wanted:
                observed.task_definitions[arn] = described
                observed.revisions_by_hash[(family, wanted)] = arn
                return


def _family_of(arn: str) -> str:
    """``arn:aws:ecs:r:a:task-definition/web:3`` -> ``web`` (familyPrefix also matches ``web-api``)."""
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]
