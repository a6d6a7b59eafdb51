"""Read live ECS state for a Desired set with as few calls as ECS allows.

* DescribeServices: 10 services per call (the API's maximum), grouped by cluster, ``READ_THREADS``
  calls in flight at once (each takes its token from the shared Pacer first, so together they stay
  within the DescribeServices bucket). Before each call the observer calls ``checkpoint``, which the
  reconciler makes raise ``Interrupted`` when a newer event stops a tick that is only reading.
* Task definitions, family by family: one thread makes a family's reads in order (DescribeTaskDefinition
  of the revisions its services run, then, when needed, its look-back), ``READ_THREADS`` families at
  once; each read calls ``checkpoint`` and takes a token from the Pacer first, and the answers are merged
  in the families' sorted order, so what is observed and indexed is the same as one family at a time.
* DescribeTaskDefinition: once per ARN (revisions are immutable): the revision index
  (revision_index.py) keeps the descriptions of each family's newest revision and of those its services
  run, and the revisions the executor registers are fed back through :meth:`Observer.remember`, so they
  are never described at all. With a state store the index outlives the process: a restarted agent,
  ``apply`` and ``plan --data-dir`` make no task-definition read for what an earlier run already knew.
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
  ListTaskDefinitions for an image bump, and a revert finds its revision in the index; an agent
  without a stored index looks back once per family, on the first content it does not know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from functools import partial
from typing import Any, TypeVar

from agent.manifests.model import Desired
from agent.plan.observed import Observed
from agent.plan.services import MANAGED_TAG_KEY
from agent.plan.taskdefs import HASH_TAG, content_hash, echoed_fields, file_hash

from .errors import translated
from .pacing import Pacer
from .revision_index import RevisionIndex, family_of, revision_of

SERVICES_PER_CALL = 10
READ_THREADS = 4  # reads in flight at once (DescribeServices calls; families whose task definitions are read)
CLUSTERS_PER_CALL = 100
# How many recent revisions of a family are examined when looking for one to reuse.
REUSE_LOOKBACK = 10
_BUILTIN_PROVIDERS = {"FARGATE", "FARGATE_SPOT"}
K = TypeVar("K")
V = TypeVar("V")


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
        self.parsers = getattr(aws, "parsers", None)  # agent.aws.parsing.ParserFactory
        self.pacer = pacer or Pacer(limits={})
        self.index = RevisionIndex(self._hash_of)  # remember() is called from the executor's threads
        self.checkpoint: Callable[[], None] = _carry_on  # raises to stop a read (agent.errors.Interrupted)

    def observe(self, desired: Desired, clusters_of: dict[str, str] | None = None) -> Observed:
        """Everything the planner needs for ``desired``.

        ``clusters_of`` maps a service manifest name to its ECS cluster name (defaults to spec.cluster).
        """
        observed = Observed()
        with translated():
            self.checkpoint()
            self._clusters(desired, observed)
            self._capacity_providers(desired, observed)
            self._services(desired, observed)
            self.checkpoint()
            self._task_definitions_for(desired, observed)
        if self.parsers is not None:
            self.parsers.forget_unused()  # answers no longer asked for (agent/aws/parsing.py)
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
        batches: list[tuple[str, list[str]]] = []
        for cluster, names in sorted(by_cluster.items()):
            batches.extend((cluster, batch) for batch in chunks(sorted(set(names)), SERVICES_PER_CALL))
        missing = {cluster for cluster, found in observed.clusters.items() if found is None}
        calls = [(cluster, tuple(batch)) for cluster, batch in batches if cluster not in missing]
        answers = self._in_parallel(calls, self._describe_services)
        for cluster, batch in batches:
            found = answers.get((cluster, tuple(batch)), {})
            for name in batch:
                observed.services[(cluster, name)] = found.get(name)

    def _describe_services(self, call: tuple[str, tuple[str, ...]]) -> dict[str, dict[str, Any]]:
        """One DescribeServices call (cluster, names): the services that exist (not INACTIVE), by name."""
        cluster, batch = call
        self.checkpoint()
        self.pacer.acquire("DescribeServices")
        try:
            out = self.ecs.describe_services(cluster=cluster, services=list(batch), include=["TAGS"])
        except self.ecs.exceptions.ClusterNotFoundException:
            out = {}
        return {s["serviceName"]: s for s in out.get("services", []) if s.get("status") != "INACTIVE"}

    def _in_parallel(self, keys: list[K], call: Callable[[K], V]) -> dict[K, V]:
        """``call(key)`` for each of ``keys``, ``READ_THREADS`` at a time, by key. When a call raises (an
        error, or ``Interrupted``), the calls not yet started are cancelled and, once those in flight have
        ended, the exception of the first key that failed is raised; no thread is left running."""
        if len(keys) <= 1:
            return {key: call(key) for key in keys}
        pool = ThreadPoolExecutor(min(READ_THREADS, len(keys)), thread_name_prefix="observe")
        try:
            futures = [pool.submit(call, key) for key in keys]
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for future in futures:
            error = None if future.cancelled() else future.exception()
            if error is not None:
                raise error
        return {key: future.result() for key, future in zip(keys, futures, strict=True)}

    def _task_definitions_for(self, desired: Desired, observed: Observed) -> None:
        """The revisions the services run, then, per family, the revision holding the desired content. Each
        family's reads are made in order, by one thread, ``READ_THREADS`` families at once; the answers
        are merged family by family in sorted order, so ``observed`` and the index do not depend on which
        thread ends first."""
        index = self.index
        index.load()
        ran: dict[str, list[str]] = {}  # family of the ARN -> ARNs its services run, in the services' order
        running: dict[str, str] = {}  # family -> ARN a service runs now
        for m in desired.services.values():
            key = (m.spec["cluster"], m.spec.get("serviceName", m.name))
            arn = current_task_definition(observed.services.get(key))
            family = desired.service_task_family.get(m.name)
            if arn and family:
                ran.setdefault(family_of(arn), []).append(arn)
                running.setdefault(family, arn)
        # Only families with a revision to describe go to the threads; the rest come from the index here.
        cold = [family for family in sorted(ran) if any(index.described(arn) is None for arn in ran[family])]
        runs = self._in_parallel(cold, lambda family: self._describe_running(ran[family]))
        for family in sorted(ran):
            _merge(observed, runs[family] if family in runs else self._describe_running(ran[family]))
        reads: dict[str, Callable[[], Observed]] = {}
        for family, td in sorted(desired.task_definitions.items()):
            wanted = file_hash(td)
            arn = running.get(family)
            if arn and self._hash_of(observed.task_definitions[arn]) == wanted:
                observed.revisions_by_hash[(family, wanted)] = arn
                continue
            known = index.by_hash(family, wanted)
            if known is not None:  # registered or seen by this agent: a revert, or a standalone family
                observed.revisions_by_hash[(family, wanted)] = known
                if family not in running:
                    observed.latest_revision[family] = known
                    reads[family] = partial(self._describe_into, known)
                continue
            if family in running and index.complete(family):
                continue  # new content: no revision can hold it, so the planner registers without a read
            reads[family] = partial(self._find_revision, family, wanted, standalone=family not in running)
        found = self._in_parallel(sorted(reads), lambda family: reads[family]())
        for family in sorted(found):
            _merge(observed, found[family])
        index.save()

    def _describe_running(self, arns: list[str]) -> Observed:
        """The revisions (of one family) services run, described (or from the index), noted as running."""
        part = Observed()
        for arn in arns:
            self.index.ran(family_of(arn), arn)
            part.task_definitions[arn] = self.describe_task_definition(arn)
            echoed = self.index.echoed(arn)
            if echoed:
                part.echoed[arn] = echoed
        return part

    def _describe_into(self, arn: str) -> Observed:
        part = Observed()
        part.task_definitions[arn] = self.describe_task_definition(arn)
        return part

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
        return self.index.complete(family)

    def intend(self, families: Iterable[str]) -> None:
        """Families about to be registered: written ahead, so a crash before ``save`` is healed."""
        self.index.intend(families)

    def save(self) -> None:
        """Write what the index learnt since the last save to the store (revisions registered meanwhile)."""
        self.index.save()

    # -- task definitions --------------------------------------------------------------------------

    def describe_task_definition(self, arn: str) -> dict[str, Any]:
        """DescribeTaskDefinition with tags, unless the index holds the revision's description (it keeps
        those of each family's newest revision and of the one its service runs; revisions never change)."""
        described = self.index.described(arn)
        if described is None:
            self.checkpoint()
            self.pacer.acquire("DescribeTaskDefinition")
            out = self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
            described = self.remember({"taskDefinition": out["taskDefinition"], "tags": out.get("tags", [])})
        return described

    def remember(
        self, described: dict[str, Any], registered: bool = False, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Index a revision (``{"taskDefinition": ..., "tags": ...}``) by ARN and by (family, content hash).

        The executor calls this with each revision it registers (``registered=True``) and the
        RegisterTaskDefinition ``request`` it sent: the agent then never describes what it registered,
        knows that no revision it has not seen lies below it, and keeps the fields ECS's answer added
        that the normaliser does not explain, for the rollout to report (no extra call: the answer is the
        revision as ECS stored it).
        """
        echoed = echoed_fields(request, described["taskDefinition"]) if request is not None else ()
        self.index.add(described, registered, echoed)
        return described

    @staticmethod
    def _hash_of(described: dict[str, Any]) -> str:
        return _tag(described.get("tags"), HASH_TAG) or content_hash(described["taskDefinition"])

    def _find_revision(self, family: str, wanted: str, standalone: bool) -> Observed:
        """Look back through the family's recent ACTIVE revisions for one with the wanted content.

        A revision listed is described only when the index does not hold its content hash, so afterwards
        the family is accounted for up to its newest revision, and the next new content needs no look-back.
        """
        part = Observed()
        self.checkpoint()
        self.pacer.acquire("ListTaskDefinitions")
        out = self.ecs.list_task_definitions(
            familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=REUSE_LOOKBACK
        )
        arns = [a for a in out.get("taskDefinitionArns", []) if _family_of(a) == family]
        if standalone:
            part.latest_revision[family] = arns[0] if arns else None
        found = None
        for i, arn in enumerate(arns):
            digest = self.index.hash_of(arn)
            if not digest or (standalone and i == 0):
                described = self.describe_task_definition(arn)
                digest = self._hash_of(described)
                if standalone and i == 0:
                    part.task_definitions[arn] = described
            if found is None and digest == wanted:
                found = arn
                part.revisions_by_hash[(family, wanted)] = arn
        self.index.looked_back(family, _revision_of(arns[0]) if arns else 0)
        return part


def _merge(observed: Observed, part: Observed) -> None:
    """Add what one family's reads found to ``observed``."""
    observed.task_definitions.update(part.task_definitions)
    observed.echoed.update(part.echoed)
    observed.revisions_by_hash.update(part.revisions_by_hash)
    observed.latest_revision.update(part.latest_revision)


def _carry_on() -> None:
    """The checkpoint of an observer nobody interrupts."""


_family_of = family_of
_revision_of = revision_of
