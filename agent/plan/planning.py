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
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from agent.manifests.model import Desired, Manifest
from agent.plan import codedeploy
from agent.plan.diff import diff
from agent.plan.model import (
    ABSENT,
    CREATE,
    DELETE,
    NO_CHANGE,
    REGISTER,
    REUSE,
    UPDATE,
    Change,
    FieldChange,
    Hold,
    Plan,
    TaskDefinitionRef,
)
from agent.plan.observed import Observed
from agent.plan.ordering import Ordering, ordering
from agent.plan.services import (
    TASK_SET_FIELDS,
    create_service_request,
    live_strategy,
    normalise_service,
    ref,
    resolve_strategy,
    switch_blocker,
    tags_list,
    task_definition_label,
    wanted_strategy,
)
from agent.plan.taskdefs import (
    content_hash,
    family_revision,
    normalise_task_definition,
    prune,
    register_request,
)

# Service fields compared only when the manifest sets them (otherwise something else owns them).
_SERVICE_OWNED_WHEN_SET = (
    "desiredCount",  # Application Auto Scaling
    "role",  # ECS picks its service-linked role
    "availabilityZoneRebalancing",
    "serviceConnectConfiguration",
    "volumeConfigurations",
    "vpcLatticeConfigurations",
    "monitoring",
)
_SERVICE_IMMUTABLE = ("launchType", "schedulingStrategy", "serviceName", "role")
_LAUNCH_TEMPLATE_UPDATABLE = (
    "ec2InstanceProfileArn",
    "networkConfiguration",
    "storageConfiguration",
    "instanceMetadataTagsPropagation",
    "localStorageConfiguration",
    "monitoring",
    "instanceRequirements",
    "capacityReservations",
)


def build_plan(
    desired: Desired, observed: Observed, revision: str | None = None, order: Ordering | None = None
) -> Plan:
    """Every change the manifests at ``revision`` ask of ECS as ``observed``, in application order.

    ``order`` is the rollout order of the whole commit when ``desired`` is only part of it (one account
    of several: a service may wait for one in another account, and waves span accounts); by default the
    order of ``desired``'s own services.
    """
    warnings: list[str] = []
    scoped = _cluster_scoped_providers(desired)
    providers = sorted(desired.capacity_providers.values(), key=lambda m: m.name)
    changes: list[Change] = []
    changes += [
        _capacity_provider_change(m, desired, observed, warnings) for m in providers if not _in_cluster(m)
    ]
    changes += [
        _cluster_change(m, observed, scoped, warnings)
        for m in sorted(desired.clusters.values(), key=lambda m: m.name)
    ]
    changes += [
        _capacity_provider_change(m, desired, observed, warnings) for m in providers if _in_cluster(m)
    ]
    refs: dict[str, TaskDefinitionRef] = {}
    for family in sorted(desired.task_definitions):
        change, refs[family] = _task_definition_change(family, desired, observed)
        changes.append(change)
    held: dict[str, list[Change]] = {}  # family -> the changes of the services that run it
    order = order if order is not None else ordering(desired.services)
    sequence = [n for n in order.sequence() if n in desired.services]
    sequence += sorted(set(desired.services) - set(sequence))  # none when ``order`` covers them all
    for manifest in (desired.services[n] for n in sequence):
        change = _service_change(manifest, desired, observed, refs, revision, warnings)
        change = _staged(change, manifest.name, order)
        changes.append(change)
        family = desired.service_task_family.get(manifest.name)
        if family:
            held.setdefault(family, []).append(change)
    changes = [_held_with_services(c, held.get(c.name, [])) for c in changes]
    for (cluster, service_name), current in sorted(observed.orphans.items()):
        changes.append(_prune_change(cluster, service_name, current, warnings))
    return Plan(changes=tuple(changes), revision=revision, warnings=tuple(warnings))


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


# ---------------------------------------------------------------------------------------------- helpers


def service_order(services: Mapping[str, Manifest]) -> list[Manifest]:
    """Services with each one after those it waits for (``dependsOn``, lower ``wave``s), by wave then
    name; cycles, which validation rejects, are broken by name."""
    return [services[name] for name in ordering(services).sequence()]


def _staged(change: Change, name: str, order: Ordering) -> Change:
    """A Service change with the wave it rolls out in and what it waits for."""
    return replace(change, wave=order.level.get(name, 0), after=order.blockers.get(name, ()))


def has_maintenance_window(spec: Mapping[str, Any], desired: Desired) -> bool:
    """Whether a service lists a maintenance window (by name, or inline)."""
    for window in spec.get("windows") or []:
        found = desired.windows.get(window) if isinstance(window, str) else None
        window_spec = found.spec if found is not None else window
        if isinstance(window_spec, Mapping) and window_spec.get("type") == "maintenance":
            return True
    return False


def _cluster_name(desired: Desired, name: str) -> str:
    manifest = desired.clusters.get(name)
    return str(manifest.spec.get("clusterName") or manifest.name) if manifest else name


def _lookup(table: Mapping[Any, Any], *keys: Any) -> Any:
    """The first key of ``keys`` present in ``table`` (ECS name first, manifest name second)."""
    for key in keys:
        if key in table:
            return table[key]
    return None


def _active(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """An observed resource, or None when missing or INACTIVE (ECS keeps deleted ones around for a while)."""
    if entry is None or entry.get("status") == "INACTIVE":
        return None
    return entry


def _in_cluster(manifest: Manifest) -> bool:
    return bool(manifest.spec.get("cluster")) or "managedInstancesProvider" in manifest.spec


def _cluster_scoped_providers(desired: Desired) -> set[str]:
    """Capacity providers that belong to one cluster (ECS Managed Instances).

    ECS associates them with their cluster when they are created, and PutClusterCapacityProviders does
    not manage them, so a Cluster's request and comparison leave them out.
    """
    return {m.name for m in desired.capacity_providers.values() if _in_cluster(m)}


def _display(value: Any) -> Any:
    """A request as shown in a plan: task-definition references as ``family:revision``."""
    if isinstance(value, TaskDefinitionRef):
        return task_definition_label(value)
    if isinstance(value, Mapping):
        return {k: _display(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_display(v) for v in value]
    return value


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _top_level(fields: Iterable[FieldChange]) -> list[str]:
    keys: list[str] = []
    for f in fields:
        key = _unescape(f.path.split("/")[1]) if f.path.startswith("/") else f.path
        if key not in keys:
            keys.append(key)
    return keys


def _ignore_drift(fields: list[FieldChange], pointers: Iterable[str]) -> list[FieldChange]:
    pointers = [p.rstrip("/") for p in pointers if isinstance(p, str)]
    return [f for f in fields if not any(f.path == p or f.path.startswith(p + "/") for p in pointers)]


def _tag_calls(old: Any, new: Any, resource_arn: str | None) -> dict[str, Any]:
    """TagResource / UntagResource parameters that turn tag list ``old`` into ``new``."""
    before = {t["key"]: t["value"] for t in tags_list(old)}
    after = {t["key"]: t["value"] for t in tags_list(new)}
    calls: dict[str, Any] = {}
    added = [{"key": k, "value": v} for k, v in sorted(after.items()) if before.get(k) != v]
    removed = sorted(k for k in before if k not in after)
    if added:
        calls["tagResource"] = {"resourceArn": resource_arn, "tags": added}
    if removed:
        calls["untagResource"] = {"resourceArn": resource_arn, "tagKeys": removed}
    return calls


def _creation_fields(request: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    return tuple(diff({}, prune(_display(request))))


def _leaf_fields(value: Any, path: str = "") -> list[FieldChange]:
    """Every leaf of a request's nested objects as an added field, so a deep shape (a Managed Instances
    launch template's instance requirements) reads one line per setting instead of one cut-off line."""
    if isinstance(value, Mapping) and value:
        out: list[FieldChange] = []
        for key in sorted(value):
            out += _leaf_fields(value[key], f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}")
        return out
    return [FieldChange(path, ABSENT, value)]


# ---------------------------------------------------------------------------------- capacity providers


def capacity_provider_request(manifest: Manifest, desired: Desired) -> dict[str, Any]:
    """CreateCapacityProvider parameters for a CapacityProvider manifest (references resolved)."""
    spec = manifest.spec
    request: dict[str, Any] = {"name": manifest.name}
    if spec.get("cluster"):
        request["cluster"] = _cluster_name(desired, str(spec["cluster"]))
    asg = spec.get("autoScalingGroupProvider")
    if isinstance(asg, Mapping):
        provider = {"autoScalingGroupArn": ref(asg.get("autoScalingGroupArn", asg.get("autoScalingGroup")))}
        for key in ("managedScaling", "managedTerminationProtection", "managedDraining"):
            if asg.get(key) is not None:
                provider[key] = copy.deepcopy(asg[key])
        request["autoScalingGroupProvider"] = provider
    managed = spec.get("managedInstancesProvider")
    if isinstance(managed, Mapping):
        provider = {k: copy.deepcopy(v) for k, v in managed.items() if k not in ("infrastructureRole",)}
        provider["infrastructureRoleArn"] = ref(
            managed.get("infrastructureRoleArn", managed.get("infrastructureRole"))
        )
        template = dict(managed.get("instanceLaunchTemplate") or {})
        profile = template.pop("ec2InstanceProfile", None)
        if profile is not None and "ec2InstanceProfileArn" not in template:
            template["ec2InstanceProfileArn"] = ref(profile)
        network = template.get("networkConfiguration")
        if isinstance(network, Mapping):
            template["networkConfiguration"] = {
                k: [ref(v) for v in vs] if isinstance(vs, list) else vs for k, vs in network.items()
            }
        provider["instanceLaunchTemplate"] = template
        request["managedInstancesProvider"] = provider
    if spec.get("tags"):
        request["tags"] = tags_list(spec["tags"])
    return request


def normalise_capacity_provider(provider: Mapping[str, Any]) -> dict[str, Any]:
    """Comparable form of a CreateCapacityProvider request or a DescribeCapacityProviders entry."""
    out: dict[str, Any] = {}
    asg = provider.get("autoScalingGroupProvider")
    if isinstance(asg, Mapping):
        asg = dict(asg)
        if isinstance(asg.get("managedScaling"), Mapping):
            asg["managedScaling"] = {
                "targetCapacity": 100,
                "minimumScalingStepSize": 1,
                "maximumScalingStepSize": 10000,
                "instanceWarmupPeriod": 300,
                **asg["managedScaling"],
            }
        asg.setdefault("managedTerminationProtection", "DISABLED")
        asg.setdefault("managedDraining", "ENABLED")
        out["autoScalingGroupProvider"] = asg
    managed = provider.get("managedInstancesProvider")
    if isinstance(managed, Mapping):
        managed = copy.deepcopy(dict(managed))
        template = managed.get("instanceLaunchTemplate")
        if isinstance(template, Mapping):
            template = dict(template)
            template.setdefault("monitoring", "BASIC")
            network = template.get("networkConfiguration")
            if isinstance(network, Mapping):
                template["networkConfiguration"] = {
                    k: sorted(str(ref(v)) for v in vs) if isinstance(vs, list) else vs
                    for k, vs in network.items()
                }
            managed["instanceLaunchTemplate"] = template
        out["managedInstancesProvider"] = managed
    if provider.get("tags"):
        out["tags"] = [t for t in tags_list(provider["tags"]) if not t["key"].startswith("aws:")]
    return prune(out)


def _capacity_provider_change(
    manifest: Manifest, desired: Desired, observed: Observed, warnings: list[str]
) -> Change:
    request = capacity_provider_request(manifest, desired)
    current = _active(observed.capacity_providers.get(manifest.name))
    source = manifest.source.file
    if current is None:
        return Change(
            "CapacityProvider",
            manifest.name,
            CREATE,
            source,
            tuple(_leaf_fields(prune(_display(request)))),
            request,
            "capacity provider does not exist",
        )
    want = normalise_capacity_provider(request)
    have = normalise_capacity_provider(current)
    # Compare only what the manifest sets inside the provider (ECS fills the rest).
    want_asg, have_asg = want.get("autoScalingGroupProvider"), have.get("autoScalingGroupProvider")
    if isinstance(want_asg, dict) and isinstance(have_asg, dict) and "managedScaling" not in want_asg:
        have_asg.pop("managedScaling", None)
    want_mi, have_mi = want.get("managedInstancesProvider"), have.get("managedInstancesProvider")
    if isinstance(want_mi, dict) and isinstance(have_mi, dict):
        for key in [k for k in have_mi if k not in want_mi]:
            del have_mi[key]
        want_lt, have_lt = want_mi.get("instanceLaunchTemplate"), have_mi.get("instanceLaunchTemplate")
        if isinstance(want_lt, dict) and isinstance(have_lt, dict):
            for key in [k for k in have_lt if k not in want_lt]:
                del have_lt[key]
    fields = diff(have, want)
    if not fields:
        return Change("CapacityProvider", manifest.name, NO_CHANGE, source, (), {}, "matches")
    calls: dict[str, Any] = {}
    update: dict[str, Any] = {"name": manifest.name}
    if "cluster" in request:
        update["cluster"] = request["cluster"]
    label = f"CapacityProvider {manifest.name}"
    changed = [f.path for f in fields]
    if any(p.startswith("/autoScalingGroupProvider/autoScalingGroupArn") for p in changed):
        warnings.append(
            f"{label}: the Auto Scaling group cannot be changed; requires re-creating the capacity provider"
        )
    if any(p.startswith("/autoScalingGroupProvider/") and "/autoScalingGroupArn" not in p for p in changed):
        asg = request["autoScalingGroupProvider"]
        update["autoScalingGroupProvider"] = {k: v for k, v in asg.items() if k != "autoScalingGroupArn"}
    managed_changes = [p for p in changed if p.startswith("/managedInstancesProvider/")]
    if managed_changes:
        managed = dict(request["managedInstancesProvider"])
        template = managed.get("instanceLaunchTemplate") or {}
        prefix = "/managedInstancesProvider/instanceLaunchTemplate/"
        fixed = sorted(
            k
            for k in template
            if k not in _LAUNCH_TEMPLATE_UPDATABLE and any(p.startswith(prefix + k) for p in managed_changes)
        )
        if fixed:
            warnings.append(
                f"{label}: {', '.join(fixed)} cannot be updated; requires re-creating the capacity provider"
            )
        managed["instanceLaunchTemplate"] = {
            k: v for k, v in template.items() if k in _LAUNCH_TEMPLATE_UPDATABLE
        }
        if any(not any(p.startswith(prefix + k) for k in fixed) for p in managed_changes):
            update["managedInstancesProvider"] = managed  # something UpdateCapacityProvider can change
    if len(update) > (2 if "cluster" in update else 1):
        calls["updateCapacityProvider"] = update
    calls.update(_tag_calls(have.get("tags"), want.get("tags"), current.get("capacityProviderArn")))
    return Change(
        "CapacityProvider",
        manifest.name,
        UPDATE,
        source,
        tuple(fields),
        calls,
        f"{len(fields)} field(s) differ",
    )


# --------------------------------------------------------------------------------------------- clusters


def cluster_request(manifest: Manifest, scoped: Iterable[str] = ()) -> dict[str, Any]:
    """CreateCluster parameters for a Cluster manifest, without cluster-scoped capacity providers."""
    spec = manifest.spec
    pending = set(scoped)
    request: dict[str, Any] = {"clusterName": str(spec.get("clusterName") or manifest.name)}
    if spec.get("capacityProviders") is not None:
        request["capacityProviders"] = [cp for cp in spec["capacityProviders"] if cp not in pending]
    if spec.get("defaultCapacityProviderStrategy") is not None:
        request["defaultCapacityProviderStrategy"] = [
            copy.deepcopy(item)
            for item in spec["defaultCapacityProviderStrategy"]
            if isinstance(item, Mapping) and item.get("capacityProvider") not in pending
        ]
    for key in ("settings", "configuration", "serviceConnectDefaults"):
        if spec.get(key) is not None:
            request[key] = copy.deepcopy(spec[key])
    if spec.get("tags"):
        request["tags"] = tags_list(spec["tags"])
    return request


def normalise_cluster(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """Comparable form of a CreateCluster request or a DescribeClusters entry (SETTINGS, TAGS included)."""
    out: dict[str, Any] = {}
    if isinstance(cluster.get("capacityProviders"), list):
        out["capacityProviders"] = sorted(set(cluster["capacityProviders"]))
    if isinstance(cluster.get("defaultCapacityProviderStrategy"), list):
        items = [
            {"base": 0, "weight": 0, **i}
            for i in cluster["defaultCapacityProviderStrategy"]
            if isinstance(i, Mapping)
        ]
        out["defaultCapacityProviderStrategy"] = sorted(items, key=lambda i: str(i.get("capacityProvider")))
    if isinstance(cluster.get("settings"), list):
        out["settings"] = sorted(
            (
                {"name": s.get("name"), "value": s.get("value")}
                for s in cluster["settings"]
                if isinstance(s, Mapping)
            ),
            key=lambda s: str(s["name"]),
        )
    for key in ("configuration", "serviceConnectDefaults"):
        if cluster.get(key) is not None:
            out[key] = copy.deepcopy(cluster[key])
    if cluster.get("tags"):
        out["tags"] = [t for t in tags_list(cluster["tags"]) if not t["key"].startswith("aws:")]
    return prune(out)


def _cluster_change(
    manifest: Manifest, observed: Observed, scoped_all: set[str], warnings: list[str]
) -> Change:
    name = str(manifest.spec.get("clusterName") or manifest.name)
    scoped = {cp for cp in scoped_all if cp in (manifest.spec.get("capacityProviders") or [])}
    request = cluster_request(manifest, scoped)
    current = _active(_lookup(observed.clusters, name, manifest.name))
    source = manifest.source.file
    later = f"; {', '.join(sorted(scoped))} attached by their own cluster field" if scoped else ""
    if current is None:
        return Change(
            "Cluster",
            name,
            CREATE,
            source,
            _creation_fields(request),
            request,
            f"cluster does not exist{later}",
        )
    want = normalise_cluster(request)
    have = normalise_cluster(
        {
            **current,
            "capacityProviders": [cp for cp in current.get("capacityProviders") or [] if cp not in scoped],
            "defaultCapacityProviderStrategy": [
                i
                for i in current.get("defaultCapacityProviderStrategy") or []
                if i.get("capacityProvider") not in scoped
            ],
        }
    )
    # Settings, configuration and Service Connect defaults the manifest does not mention are not ours.
    named = {s["name"] for s in want.get("settings", [])}
    if "settings" in have:
        have["settings"] = [s for s in have["settings"] if s["name"] in named]
    for key in ("configuration", "serviceConnectDefaults"):
        if key not in want:
            have.pop(key, None)
    have = prune(have)
    fields = diff(have, want)
    if not fields:
        return Change("Cluster", name, NO_CHANGE, source, (), {}, f"matches{later}")
    changed = _top_level(fields)
    calls: dict[str, Any] = {}
    if {"capacityProviders", "defaultCapacityProviderStrategy"} & set(changed):
        calls["putClusterCapacityProviders"] = {
            "cluster": name,
            "capacityProviders": request.get("capacityProviders", []),
            "defaultCapacityProviderStrategy": request.get("defaultCapacityProviderStrategy", []),
        }
    if "settings" in changed:
        before = {s["name"]: s for s in have.get("settings", [])}
        settings = [s for s in want.get("settings", []) if before.get(s["name"]) != s]
        calls["updateClusterSettings"] = {"cluster": name, "settings": settings}
    cluster_update = {
        k: request[k] for k in ("configuration", "serviceConnectDefaults") if k in changed and k in request
    }
    if cluster_update:
        calls["updateCluster"] = {"cluster": name, **cluster_update}
    if "tags" in changed:
        calls.update(_tag_calls(have.get("tags"), want.get("tags"), current.get("clusterArn")))
    return Change(
        "Cluster", name, UPDATE, source, tuple(fields), calls, f"{len(fields)} field(s) differ{later}"
    )


# ------------------------------------------------------------------------------------- task definitions


def _running_task_definition(service: Mapping[str, Any]) -> str | None:
    """The task definition a described service runs: its own, or its PRIMARY task set's (EXTERNAL)."""
    if (service.get("deploymentController") or {}).get("type") == "EXTERNAL":
        for task_set in service.get("taskSets") or []:
            if task_set.get("status") == "PRIMARY":
                return task_set.get("taskDefinition")
        return None
    return service.get("taskDefinition")


def _current_revision(family: str, desired: Desired, observed: Observed) -> str | None:
    """The revision of ``family`` to diff against: the one a service of this family runs, else the latest."""
    for manifest_name in sorted(n for n, f in desired.service_task_family.items() if f == family):
        manifest = desired.services.get(manifest_name)
        if manifest is None:
            continue
        cluster = _cluster_name(desired, str(manifest.spec.get("cluster", "")))
        service_name = str(manifest.spec.get("serviceName") or manifest.name)
        current = _active(observed.services.get((cluster, service_name)))
        arn = _running_task_definition(current) if current else None
        if arn and family_revision(arn).rsplit(":", 1)[0] == family:
            return arn
    return observed.latest_revision.get(family)


def _task_definition_change(
    family: str, desired: Desired, observed: Observed
) -> tuple[Change, TaskDefinitionRef]:
    tdf = desired.task_definitions[family]
    wanted = normalise_task_definition(tdf.body)
    digest = content_hash(tdf.body)
    source = tdf.source.file
    current_arn = _current_revision(family, desired, observed)
    current = observed.task_definitions.get(current_arn) if current_arn else None
    if current_arn and current is not None and normalise_task_definition(current) == wanted:
        label = family_revision(current_arn)
        change = Change(
            "TaskDefinition",
            family,
            NO_CHANGE,
            source,
            (),
            {"taskDefinitionArn": current_arn},
            f"content {digest} is {label}",
        )
        return change, TaskDefinitionRef(family, digest, current_arn)
    reused = observed.revisions_by_hash.get((family, digest))
    if reused:
        label = family_revision(reused)
        change = Change(
            "TaskDefinition",
            family,
            REUSE,
            source,
            (),
            {"taskDefinitionArn": reused},
            f"content {digest} matches {label}",
        )
        return change, TaskDefinitionRef(family, digest, reused)
    if current is not None and current_arn:
        fields = diff(normalise_task_definition(current), wanted)
        reason = f"content {digest} differs from {family_revision(current_arn)}"
    else:
        fields = diff({}, wanted)
        reason = (
            f"content {digest}, first revision of the family"
            if not current_arn
            else (f"content {digest}; {family_revision(current_arn)} was not described")
        )
    change = Change(
        "TaskDefinition", family, REGISTER, source, tuple(fields), register_request(tdf.body), reason
    )
    return change, TaskDefinitionRef(family, digest, None)


# --------------------------------------------------------------------------------------------- services


def _service_change(
    manifest: Manifest,
    desired: Desired,
    observed: Observed,
    refs: Mapping[str, TaskDefinitionRef],
    revision: str | None,
    warnings: list[str],
) -> Change:
    spec = manifest.spec
    cluster = _cluster_name(desired, str(spec.get("cluster", "")))
    service_name = str(spec.get("serviceName") or manifest.name)
    name = f"{cluster}/{service_name}"
    source = manifest.source.file
    inline = spec.get("taskDefinition")
    family = desired.service_task_family.get(manifest.name) or (
        str(inline.get("family")) if isinstance(inline, Mapping) else None
    )
    task_definition: TaskDefinitionRef | str | None = refs.get(family) if family else None
    if task_definition is None and isinstance(inline, str) and ":" in inline:
        task_definition = inline  # an ARN or family:revision the manifests do not own
    try:
        strategy = resolve_strategy(spec.get("strategy"), desired.strategies)
    except KeyError as error:
        warnings.append(f"Service {name}: {error.args[0]}; planned with the default rolling strategy")
        strategy = None
    request = create_service_request(
        spec,
        service_name=service_name,
        cluster=cluster,
        task_definition=task_definition,
        strategy=strategy,
        external_id=revision,
        pause=has_maintenance_window(spec, desired),
    )
    current = _active(
        _lookup(observed.services, (cluster, service_name), (str(spec.get("cluster", "")), service_name))
    )
    if current is None:
        reason = "service does not exist"
        if "desiredCount" not in request and request.get("schedulingStrategy") != "DAEMON":
            request["desiredCount"] = 1
            reason += "; desiredCount 1 to start (autoscaling owns it afterwards)"
        return Change("Service", name, CREATE, source, _creation_fields(request), request, reason)

    request = _on_live_target_group(request, spec, current)
    want = normalise_service(request)
    have = normalise_service(current)
    for key in _SERVICE_OWNED_WHEN_SET:
        if key not in want:
            have.pop(key, None)
    if "launchType" not in want and "capacityProviderStrategy" not in want:
        have.pop("launchType", None)  # the cluster's default capacity-provider strategy applies
        have.pop("capacityProviderStrategy", None)
    fields = _ignore_drift(diff(have, want), spec.get("ignoreDrift") or [])
    if not fields:
        return Change("Service", name, NO_CHANGE, source, (), {}, "matches")

    external = want["deploymentController"]["type"] == "EXTERNAL"
    update: dict[str, Any] = {"cluster": cluster, "service": service_name}
    calls: dict[str, Any] = {}
    task_set_changed = False
    label = f"Service {name}"
    before, after = live_strategy(current), wanted_strategy(strategy)
    # A CODE_DEPLOY service's switch is agent.plan.codedeploy's (a hold, or a migration with its note).
    switch = f"strategy {before} -> {after}, in place" if before not in (after, "CODE_DEPLOY") else ""
    blocked = switch_blocker(current, strategy)
    if blocked is not None:
        warnings.append(f"{label}: {blocked[1]}")
        reason = f"strategy {before} -> {after}: {'refused' if blocked[0] == 'failure' else 'waiting'}"
        return Change("Service", name, UPDATE, source, tuple(fields), {}, reason)
    if switch and "EXTERNAL" in (before, after):
        switch = f"strategy {before} -> {after}, in place: the PRIMARY task set becomes the deployment"
    for key in _top_level(fields):
        old, new = have.get(key, ABSENT), want.get(key, ABSENT)
        if key == "tags":
            continue
        if key in _SERVICE_IMMUTABLE:
            if not (key == "launchType" and new is ABSENT):  # launch type -> capacity providers is an update
                warnings.append(
                    f"{label}: {key} cannot be changed by UpdateService; requires re-creating the service"
                )
            continue
        if external and key in TASK_SET_FIELDS:
            task_set_changed = True
            continue
        value = request.get(key, new)
        if value is ABSENT:
            if not isinstance(old, list):
                warnings.append(f"{label}: {key} was removed from the manifest; ECS keeps the current value")
                continue
            value = []
        update[key] = value
    if len(update) > 2:
        calls["updateService"] = update
    if task_set_changed:
        calls["taskSet"] = request["taskSet"]
    calls.update(_tag_calls(have.get("tags"), want.get("tags"), current.get("serviceArn")))
    note, hold = "", None
    if codedeploy.controller(current) == codedeploy.CODE_DEPLOY:
        note, hold = codedeploy.gate(spec, current, want["deploymentController"]["type"])
    reason = switch or f"{len(fields)} field(s) differ"
    return Change("Service", name, UPDATE, source, tuple(fields), calls, reason, note=note, hold=hold)


# ---------------------------------------------------------------------------------------------- pruning


def _prune_change(cluster: str, service_name: str, current: Mapping[str, Any], warnings: list[str]) -> Change:
    """Delete a service the agent manages that no manifest names any more: scale to 0, then delete."""
    calls: dict[str, Any] = {}
    if current.get("schedulingStrategy") != "DAEMON":  # a daemon has no desiredCount to set
        calls["updateService"] = {"cluster": cluster, "service": service_name, "desiredCount": 0}
    calls["deleteService"] = {"cluster": cluster, "service": service_name, "force": True}
    name = f"{cluster}/{service_name}"
    running = current.get("desiredCount", ABSENT)
    warnings.append(f"Service {name} will be DELETED: no manifest names it any more (sync.prune is on)")
    return Change(
        "Service",
        name,
        DELETE,
        "",
        (FieldChange("/desiredCount", running, 0), FieldChange("/status", current.get("status"), ABSENT)),
        calls,
        "pruned: no longer in Git; scaled to 0, then deleted",
    )


def _on_live_target_group(
    request: dict[str, Any], spec: Mapping[str, Any], current: Mapping[str, Any]
) -> dict[str, Any]:
    """An agent-engine service alternates its task sets between targetGroup and alternateTargetGroup: a
    PRIMARY task set on the alternate group is as desired, so the request names that group too (otherwise
    the plan would show the target group changing after every other rollout)."""
    task_set = request.get("taskSet")
    balancers = spec.get("loadBalancers") or []
    if not isinstance(task_set, Mapping) or not balancers or not isinstance(balancers[0], Mapping):
        return request
    alternate = ref(balancers[0].get("alternateTargetGroup"))
    primary = next((ts for ts in current.get("taskSets") or [] if ts.get("status") == "PRIMARY"), None)
    live = ((primary or {}).get("loadBalancers") or [{}])[0].get("targetGroupArn")
    if not alternate or live != alternate or not task_set.get("loadBalancers"):
        return request
    out = copy.deepcopy(request)
    out["taskSet"]["loadBalancers"][0]["targetGroupArn"] = alternate
    return out
