"""Read live ECS state for a Desired set with as few calls as ECS allows.

* DescribeServices: 10 services per call (the API's maximum), grouped by cluster.
* DescribeTaskDefinition: once per ARN for the life of the Observer (revisions are immutable); the
  revisions the executor registers are fed back through :meth:`Observer.remember`, so they are never
  described at all.
* DescribeClusters / DescribeCapacityProviders: one call each for all names.
* ListTaskDefinitions: only to find an older revision with the desired content (a revert, or a crash
  after registering) when the agent cannot already know the answer. The Observer indexes every revision
  it has described or registered by (family, content hash), and per family remembers up to which
  revision number that index is complete (``accounted``): after one look-back, or from a revision 1 it
  registered itself, each registration whose number follows on extends it. A content hash that is not
  in the index of a family a service runs, whose every revision seen is accounted for, cannot exist in
  ECS (within the look-back; revisions registered meanwhile by other tools are not searched): the
  planner registers it without a read. (A family no service runs is looked back on every time: there
  is no running revision to tell that someone registered a newer one.) So a long-running agent makes no
  ListTaskDefinitions for an image bump, and a revert finds its revision in the index; a restarted
  agent looks back once per family, on the first content it does not know.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from agent.manifests.model import Desired
from agent.plan.observed import Observed
from agent.plan.services import MANAGED_TAG_KEY
from agent.plan.taskdefs import HASH_TAG, content_hash

from .errors import translated
from .pacing import Pacer

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

    def __init__(self, aws: Any, pacer: Pacer | None = None) -> None:
        self.ecs = aws.client("ecs")
        self.pacer = pacer or Pacer(limits={})
        self._task_definitions: dict[str, dict[str, Any]] = {}
        self._by_hash: dict[tuple[str, str], str] = {}  # (family, content hash) -> ARN
        self._newest: dict[str, tuple[int, str]] = {}  # family -> (revision, ARN) of the newest seen
        # family -> N: every revision numbered <= N (within the look-back) is in _by_hash.
        self._accounted: dict[str, int] = {}
        self._lock = threading.Lock()  # remember() is called from the executor's threads

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
                    self.pacer.acquire("DescribeServices")
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
            known = self._by_hash.get((family, wanted))
            if known is not None:  # registered or seen by this agent: a revert, or a standalone family
                observed.revisions_by_hash[(family, wanted)] = known
                if family not in running:
                    observed.latest_revision[family] = known
                    observed.task_definitions[known] = self._task_definitions[known]
                continue
            if family in running and self.complete(family):
                continue  # new content: no revision can hold it, so the planner registers without a read
            self._find_revision(family, wanted, observed, standalone=family not in running)

    def orphans(
        self, clusters: Iterable[str], known: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """ACTIVE services of ``clusters`` tagged ``ecs-gitops:managed=true`` that are not ``known``.

        For prune (``sync.prune``) only: ListServices per cluster, then DescribeServices (with tags) for
        the services no manifest names, 10 per call. A cluster that does not exist has none.
        """
        found: dict[tuple[str, str], dict[str, Any]] = {}
        with translated():
            for cluster in sorted(set(clusters)):
                try:
                    pages = self.ecs.get_paginator("list_services").paginate(cluster=cluster)
                    names = [arn.rsplit("/", 1)[-1] for page in pages for arn in page.get("serviceArns", [])]
                except self.ecs.exceptions.ClusterNotFoundException:
                    continue
                candidates = sorted({n for n in names if (cluster, n) not in known})
                for batch in chunks(candidates, SERVICES_PER_CALL):
                    self.pacer.acquire("DescribeServices")
                    out = self.ecs.describe_services(cluster=cluster, services=batch, include=["TAGS"])
                    for service in out.get("services", []):
                        if (
                            service.get("status") == "ACTIVE"
                            and _tag(service.get("tags"), MANAGED_TAG_KEY) == "true"
                        ):
                            found[(cluster, service["serviceName"])] = service
        return found

    def complete(self, family: str) -> bool:
        """True when every revision of ``family`` this agent has seen is accounted for in its index."""
        with self._lock:
            accounted = self._accounted.get(family)
            newest = self._newest.get(family, (0, ""))[0]
        return accounted is not None and newest <= accounted

    # -- task definitions --------------------------------------------------------------------------

    def describe_task_definition(self, arn: str) -> dict[str, Any]:
        """DescribeTaskDefinition with tags, once per ARN (revisions never change)."""
        if arn not in self._task_definitions:
            out = self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
            described = self.remember({"taskDefinition": out["taskDefinition"], "tags": out.get("tags", [])})
            # Also cache under the name asked for, so family:rev and ARN share one entry.
            self._task_definitions[arn] = described
        return self._task_definitions[arn]

    def remember(self, described: dict[str, Any], registered: bool = False) -> dict[str, Any]:
        """Index a revision (``{"taskDefinition": ..., "tags": ...}``) by ARN and by (family, content hash).

        The executor calls this with each revision it registers (``registered=True``): the agent then never
        describes what it registered, and knows that no revision it has not seen lies below it.
        """
        td = described["taskDefinition"]
        arn, family, revision = td["taskDefinitionArn"], td["family"], int(td.get("revision") or 0)
        with self._lock:
            self._task_definitions[arn] = described
            if td.get("status", "ACTIVE") == "ACTIVE":
                self._by_hash.setdefault((family, self._hash_of(described)), arn)
            if revision > self._newest.get(family, (0, ""))[0]:
                self._newest[family] = (revision, arn)
            accounted = self._accounted.get(family)
            if registered and revision == 1:
                self._accounted[family] = 1
            elif accounted is not None and revision == accounted + 1:
                self._accounted[family] = revision
        return described

    @staticmethod
    def _hash_of(described: dict[str, Any]) -> str:
        return _tag(described.get("tags"), HASH_TAG) or content_hash(described["taskDefinition"])

    def _find_revision(self, family: str, wanted: str, observed: Observed, standalone: bool) -> None:
        """Look back through the family's recent ACTIVE revisions for one with the wanted content.

        Every revision listed is described (once per process: they are cached), so afterwards the family
        is accounted for up to its newest revision, and the next new content needs no look-back.
        """
        out = self.ecs.list_task_definitions(
            familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=REUSE_LOOKBACK
        )
        arns = [a for a in out.get("taskDefinitionArns", []) if _family_of(a) == family]
        if standalone:
            observed.latest_revision[family] = arns[0] if arns else None
        found = None
        for i, arn in enumerate(arns):
            described = self.describe_task_definition(arn)
            if standalone and i == 0:
                observed.task_definitions[arn] = described
            if found is None and self._hash_of(described) == wanted:
                found = arn
                observed.task_definitions[arn] = described
                observed.revisions_by_hash[(family, wanted)] = arn
        newest = _revision_of(arns[0]) if arns else 0
        with self._lock:
            if newest >= self._newest.get(family, (0, ""))[0]:
                self._accounted[family] = max(newest, self._accounted.get(family, 0))


def _family_of(arn: str) -> str:
    """``arn:aws:ecs:r:a:task-definition/web:3`` -> ``web`` (familyPrefix also matches ``web-api``)."""
    return arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def _revision_of(arn: str) -> int:
    tail = arn.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0
