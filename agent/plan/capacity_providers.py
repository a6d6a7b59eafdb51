"""Capacity providers: the CreateCapacityProvider request from a manifest, its normal form, and the change.

A provider backed by an Auto Scaling group stands alone; one that lives in a cluster (ECS Managed
Instances) is created with its cluster, after it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from agent.manifests.model import Desired, Manifest
from agent.plan.diff import diff
from agent.plan.model import CREATE, NO_CHANGE, UPDATE, Change
from agent.plan.observed import Observed
from agent.plan.resources import active, cluster_name, display, leaf_fields, tag_calls
from agent.plan.taskdefs import prune
from agent.plan.values import ref, tags_list

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


def in_cluster(manifest: Manifest) -> bool:
    return bool(manifest.spec.get("cluster")) or "managedInstancesProvider" in manifest.spec


def cluster_scoped_providers(desired: Desired) -> set[str]:
    """Capacity providers that belong to one cluster (ECS Managed Instances).

    ECS associates them with their cluster when they are created, and PutClusterCapacityProviders does
    not manage them, so a Cluster's request and comparison leave them out.
    """
    return {m.name for m in desired.capacity_providers.values() if in_cluster(m)}


def capacity_provider_request(manifest: Manifest, desired: Desired) -> dict[str, Any]:
    """CreateCapacityProvider parameters for a CapacityProvider manifest (references resolved)."""
    spec = manifest.spec
    request: dict[str, Any] = {"name": manifest.name}
    if spec.get("cluster"):
        request["cluster"] = cluster_name(desired, str(spec["cluster"]))
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


def capacity_provider_change(
    manifest: Manifest, desired: Desired, observed: Observed, warnings: list[str]
) -> Change:
    request = capacity_provider_request(manifest, desired)
    current = active(observed.capacity_providers.get(manifest.name))
    source = manifest.source.file
    if current is None:
        return Change(
            "CapacityProvider",
            manifest.name,
            CREATE,
            source,
            tuple(leaf_fields(prune(display(request)))),
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
    calls.update(tag_calls(have.get("tags"), want.get("tags"), current.get("capacityProviderArn")))
    return Change(
        "CapacityProvider",
        manifest.name,
        UPDATE,
        source,
        tuple(fields),
        calls,
        f"{len(fields)} field(s) differ",
    )
