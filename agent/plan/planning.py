"""``build_plan``: desired (one commit's manifests) x observed (live ECS) -> the ``Plan`` value object.

A pure function: no clock, no I/O. The order of the changes is the order they must be applied in:
capacity providers backed by an Auto Scaling group, clusters, capacity providers that live in a cluster
(ECS Managed Instances need their cluster first), task definitions (by family), services (a service
after the services it waits for (``dependsOn`` and lower ``wave``s, see ``agent.plan.ordering``),
otherwise by name), then services to delete (managed services no manifest names any more, found by the
observer only when ``sync.prune`` is on).

``Change.request`` conventions (the executor relies on them):

* ``create`` and ``register``: the parameters of exactly one API call, ready for boto3 —
  CreateCapacityProvider, CreateCluster, RegisterTaskDefinition, CreateService. A CreateService request
  for an EXTERNAL (agent engine) service carries one extra key, ``taskSet``: CreateTaskSet parameters
  without ``cluster``/``service``, to be popped and sent after the service exists. ``taskDefinition`` in
  a service request (or its ``taskSet``) is a ``TaskDefinitionRef``: its ``arn`` when known, otherwise the
  ARN the executor got registering that family earlier in the same plan.
* ``update``: a dict keyed by API operation (lowerCamel), each value that call's parameters, to be sent in
  the dict's order: ``updateCapacityProvider``, ``putClusterCapacityProviders``,
  ``updateClusterSettings``, ``updateCluster``, ``updateService``, ``tagResource``, ``untagResource``.
  Only the calls needed are present; UpdateService carries only the top-level fields that differ.
  An EXTERNAL service whose task-set fields differ carries ``taskSet`` (same shape as on create): the
  agent rollout engine turns it into a new task set, it is not a single call.
* ``delete`` (a Service pruned): ``updateService`` (desiredCount 0, except for DAEMON services) then
  ``deleteService`` (force, so task sets go too), to be sent in that order.
* ``reuse`` and ``no-change`` task definitions: ``{"taskDefinitionArn": ARN}`` (the revision to run).
* other ``no-change``: ``{}``.

A field that ``UpdateService`` cannot change (``launchType``, ``schedulingStrategy``, ``serviceName``,
``role``, a switch to or from the EXTERNAL controller) or that ``UpdateCapacityProvider`` cannot change
(the Auto Scaling group) is reported in the diff and as a plan warning; it is left out of the request.

Each resource's request, normal form and change are in their own module: ``agent.plan.capacity_providers``,
``agent.plan.clusters``, ``agent.plan.revisions`` (task definitions), ``agent.plan.service_changes`` and
``agent.plan.orphans`` (deletes); this module orders them into the plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from agent.manifests.model import Desired, Manifest
from agent.plan.capacity_providers import (
    capacity_provider_change,
    capacity_provider_request,
    cluster_scoped_providers,
    in_cluster,
    normalise_capacity_provider,
)
from agent.plan.clusters import cluster_change, cluster_request, normalise_cluster
from agent.plan.model import REGISTER, Change, Hold, Plan, TaskDefinitionRef
from agent.plan.observed import Observed
from agent.plan.ordering import Ordering, ordering, ordering_of
from agent.plan.orphans import prune_change
from agent.plan.resources import cluster_name, lookup
from agent.plan.revisions import services_by_family, task_definition_change
from agent.plan.service_changes import has_maintenance_window, service_change
from agent.plan.services import resolve_strategy
from agent.plan.strategies import deployment_settings

__all__ = [
    "build_plan",
    "capacity_provider_request",
    "cluster_request",
    "has_maintenance_window",
    "normalise_capacity_provider",
    "normalise_cluster",
    "service_order",
]


@dataclass(frozen=True)
class _Planned:
    """One service's change and the warnings planning it added, under the inputs it was computed from."""

    inputs: _Inputs
    change: Change
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Inputs:
    """Everything one service's change is computed from."""

    shared: bytes  # the digest of the strategies, windows and clusters (``_shared_inputs``)
    file: str
    spec: Mapping[str, Any]
    ref: TaskDefinitionRef | None
    revision: str | None  # only an agent-engine service's change reads the commit
    live: Any  # ECS's description of the service

    def same(self, other: _Inputs) -> bool:
        """Whether a change computed from ``other`` is this one's. ECS's description is compared by
        identity (an answer byte for byte the same as last tick's is the same object: agent/aws/parsing.py)
        or with ``==`` (botocore gives each field one type); a manifest's spec by identity, or by its
        encoding when it was loaded again, since ``==`` takes 1 for 1.0 and True, which a manifest may tell
        apart."""
        return (
            self.shared == other.shared
            and self.file == other.file
            and self.ref == other.ref
            and self.revision == other.revision
            and (self.spec is other.spec or _digest(self.spec) == _digest(other.spec))
            and (self.live is other.live or self.live == other.live)
        )


class ServiceMemo:
    """The last plan of each service, reused while everything its change is computed from (its manifest,
    the strategies, windows and clusters it may name, its task-definition reference, the revision, and
    ECS's description of it) is the same as last time. The inputs are kept and compared, not copied:
    planning never changes them (``build_plan`` is a pure function), and comparing a live description
    with last tick's costs a thirtieth of encoding it for a digest. An unchanged service in a no-op tick
    costs one comparison instead of a normalisation and a diff. Holds one entry per service of the last
    plan."""

    def __init__(self) -> None:
        self._entries: dict[str, _Planned] = {}

    def get(self, name: str, inputs: _Inputs) -> _Planned | None:
        entry = self._entries.get(name)
        return entry if entry is not None and inputs.same(entry.inputs) else None

    def keep(self, entries: MutableMapping[str, _Planned]) -> None:
        """The entries of this plan become the memo (services no longer planned are forgotten)."""
        self._entries = dict(entries)

    def __len__(self) -> int:
        return len(self._entries)


def _digest(*parts: Any) -> bytes:
    text = json.dumps(parts, default=repr, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _shared_inputs(desired: Desired) -> bytes:
    """The digest of what any service's change may read besides its own manifest."""
    named = (desired.strategies, desired.windows, desired.clusters)
    return _digest([{n: [m.name, m.spec] for n, m in group.items()} for group in named])


def build_plan(
    desired: Desired,
    observed: Observed,
    revision: str | None = None,
    order: Ordering | None = None,
    memo: ServiceMemo | None = None,
) -> Plan:
    """Every change the manifests at ``revision`` ask of ECS as ``observed``, in application order.

    ``order`` is the rollout order of the whole commit when ``desired`` is only part of it (one account
    of several: a service may wait for one in another account, and waves span accounts); by default the
    order of ``desired``'s own services. ``memo`` (kept by the caller from one plan to the next) reuses
    the change of each service whose inputs have not changed.
    """
    warnings: list[str] = []
    scoped = cluster_scoped_providers(desired)
    providers = sorted(desired.capacity_providers.values(), key=lambda m: m.name)
    changes: list[Change] = []
    changes += [
        capacity_provider_change(m, desired, observed, warnings) for m in providers if not in_cluster(m)
    ]
    changes += [
        cluster_change(m, observed, scoped, warnings)
        for m in sorted(desired.clusters.values(), key=lambda m: m.name)
    ]
    changes += [capacity_provider_change(m, desired, observed, warnings) for m in providers if in_cluster(m)]
    refs: dict[str, TaskDefinitionRef] = {}
    users = services_by_family(desired)
    for family in sorted(desired.task_definitions):
        change, refs[family] = task_definition_change(family, users.get(family, ()), desired, observed)
        changes.append(change)
    held: dict[str, list[Change]] = {}  # family -> the changes of the services that run it
    order = order if order is not None else ordering_of(desired)
    sequence = [n for n in order.sequence() if n in desired.services]
    sequence += sorted(set(desired.services) - set(sequence))  # none when ``order`` covers them all
    shared = _shared_inputs(desired) if memo is not None else b""
    planned: dict[str, _Planned] = {}
    for manifest in (desired.services[n] for n in sequence):
        if memo is None:
            change = service_change(manifest, desired, observed, refs, revision, warnings)
        else:
            change = _memoised(manifest, desired, observed, refs, revision, warnings, memo, shared, planned)
        change = _staged(change, manifest.name, order)
        changes.append(change)
        family = desired.service_task_family.get(manifest.name)
        if family:
            held.setdefault(family, []).append(change)
    changes = [_held_with_services(c, held.get(c.name, [])) for c in changes]
    for (cluster, service_name), current in sorted(observed.orphans.items()):
        changes.append(prune_change(cluster, service_name, current, warnings))
    if memo is not None:
        memo.keep(planned)
    return Plan(changes=tuple(changes), revision=revision, warnings=tuple(warnings))


def _uses_revision(spec: Mapping[str, Any], desired: Desired) -> bool:
    """Whether a service's change depends on the commit: only an agent-engine (EXTERNAL) service's does,
    its task set carrying the commit as ``externalId``."""
    try:
        strategy = resolve_strategy(spec.get("strategy"), desired.strategies)
    except KeyError:
        return True
    controller, _ = deployment_settings(strategy, has_maintenance_window(spec, desired))
    return bool(controller["type"] == "EXTERNAL")


def _memoised(
    manifest: Manifest,
    desired: Desired,
    observed: Observed,
    refs: Mapping[str, TaskDefinitionRef],
    revision: str | None,
    warnings: list[str],
    memo: ServiceMemo,
    shared: bytes,
    planned: dict[str, _Planned],
) -> Change:
    """``service_change``, or the memo's change when its inputs are the same as last time."""
    spec = manifest.spec
    family = desired.service_task_family.get(manifest.name)
    inline = spec.get("taskDefinition")
    if family is None and isinstance(inline, Mapping):
        family = str(inline.get("family"))
    cluster = str(spec.get("cluster", ""))
    service_name = str(spec.get("serviceName") or manifest.name)
    live = lookup(observed.services, (cluster_name(desired, cluster), service_name), (cluster, service_name))
    ref = refs.get(family) if family else None
    used = revision if _uses_revision(spec, desired) else None  # the task set's externalId, only
    inputs = _Inputs(shared, manifest.source.file, spec, ref, used, live)
    found = memo.get(manifest.name, inputs)
    if found is None:
        before = len(warnings)
        change = service_change(manifest, desired, observed, refs, revision, warnings)
        found = _Planned(inputs, change, tuple(warnings[before:]))
    else:
        warnings.extend(found.warnings)
        # Kept under this tick's inputs: the next tick at this commit finds the same spec object (an
        # identity check), not the previous commit's equal copy (an encoding of each).
        found = _Planned(inputs, found.change, found.warnings)
    planned[manifest.name] = found
    return found.change


def _held_with_services(change: Change, users: list[Change]) -> Change:
    """A new revision is registered when a service runs it: held while every service of its family is."""
    if change.kind != "TaskDefinition" or change.action != REGISTER or not users:
        return change
    holds = [u.hold for u in users]
    if any(h is None for h in holds):
        return change
    names = ", ".join(u.name for u in users)
    waiting = all(h is not None and h.waiting for h in holds)
    return replace(change, hold=Hold(f"registered when {names} may be deployed", waiting))


def service_order(services: Mapping[str, Manifest]) -> list[Manifest]:
    """Services with each one after those it waits for (``dependsOn``, lower ``wave``s), by wave then
    name; cycles, which validation rejects, are broken by name."""
    return [services[name] for name in ordering(services).sequence()]


def _staged(change: Change, name: str, order: Ordering) -> Change:
    """A Service change with the wave it rolls out in and what it waits for."""
    return replace(change, wave=order.level.get(name, 0), after=order.blockers.get(name, ()))
