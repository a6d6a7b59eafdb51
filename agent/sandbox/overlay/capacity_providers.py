"""Capacity providers in the overlay: Managed Instances providers held here, Auto Scaling group
providers in moto with their replies patched, and the capacity-provider strategy rules services and
clusters share.

moto crashes (HTTP 500) on managedInstancesProvider, so Managed Instances providers live in the
overlay. moto also: crashes on DescribeCapacityProviders without names, never returns the FARGATE
and FARGATE_SPOT providers, ignores managedDraining on update, returns tags without include=TAGS,
omits `type`, and spells failure ARNs `capacity_provider/`.
"""

from __future__ import annotations

import copy
import re

from agent.sandbox.overlay.calls import Call, EcsError, Json, Reply
from agent.sandbox.overlay.shapes import conform

FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


def check_capacity_strategy(cluster: Json, strategy: list[Json]) -> None:
    """Every provider of ``strategy`` must be associated with ``cluster``, as ECS requires."""
    known = set(cluster.get("capacityProviders") or [])
    for item in strategy:
        name = item.get("capacityProvider")
        if name not in known:
            raise EcsError(
                "InvalidParameterException",
                f"The specified capacity provider strategy cannot contain a capacity provider that is not "
                f"associated with the cluster ({name}). Associate the capacity provider with the cluster "
                "or specify a valid capacity provider and try again.",
            )


def normalise_strategy(strategy: list[Json]) -> list[Json]:
    """ECS echoes a capacity-provider strategy with ``weight`` and ``base`` filled (default 0)."""
    return [
        {
            "capacityProvider": item.get("capacityProvider"),
            "weight": item.get("weight", 0),
            "base": item.get("base", 0),
        }
        for item in strategy
    ]


def managed_key(call: Call, name_or_arn: str) -> tuple[str, str, str]:
    """How the overlay keys a Managed Instances provider: (account, region, name)."""
    return (*call.where, name_or_arn.rsplit("/", 1)[-1])


def _builtin_provider(call: Call, name: str) -> Json:
    return {
        "capacityProviderArn": call.arn(f"capacity-provider/{name}"),
        "name": name,
        "status": "ACTIVE",
        "tags": [],
        "type": name,
    }


def _check_provider_name(name: str) -> None:
    if not name or not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", name):
        raise EcsError(
            "ClientException", "Invalid capacity provider name: up to 255 letters, numbers, '_' or '-'."
        )
    if name.lower().startswith(("aws", "ecs", "fargate")):
        raise EcsError(
            "ClientException", "The capacity provider name can't be prefixed with 'aws', 'ecs' or 'fargate'."
        )


def create_capacity_provider(call: Call) -> Reply:
    """CreateCapacityProvider: Managed Instances in the overlay, Auto Scaling group providers in moto."""
    params = call.params
    name = params.get("name", "")
    _check_provider_name(name)
    if call.state.managed_providers.get(managed_key(call, name)) or name in call.state.asg_providers.get(
        call.where, []
    ):
        raise EcsError("ClientException", f"A capacity provider with the name {name} already exists.")
    managed = params.get("managedInstancesProvider")
    if managed is not None and params.get("autoScalingGroupProvider") is not None:
        raise EcsError(
            "ClientException",
            "Specify either autoScalingGroupProvider or managedInstancesProvider, not both.",
        )
    if managed is None:
        reply = call.forward({k: v for k, v in params.items() if k != "cluster"})
        if reply.ok:
            call.state.asg_providers.setdefault(call.where, []).append(name)
            provider = reply.json()["capacityProvider"]
            patch: Json = {"managedDraining": "ENABLED"}
            if "managedDraining" in (params.get("autoScalingGroupProvider") or {}):
                patch["managedDraining"] = params["autoScalingGroupProvider"]["managedDraining"]
            call.state.asg_patches[provider["capacityProviderArn"]] = patch
        return reply
    if not params.get("cluster"):
        raise EcsError(
            "InvalidParameterException", "cluster is required for a Managed Instances capacity provider."
        )
    cluster = call.describe_cluster(params["cluster"])
    if not managed.get("infrastructureRoleArn") or not managed.get("instanceLaunchTemplate"):
        raise EcsError(
            "InvalidParameterException",
            "managedInstancesProvider needs infrastructureRoleArn and instanceLaunchTemplate.",
        )
    provider = {
        "capacityProviderArn": call.arn(f"capacity-provider/{name}"),
        "name": name,
        "cluster": cluster["clusterName"],
        "status": "ACTIVE",
        "managedInstancesProvider": conform(managed, "ManagedInstancesProvider"),
        "tags": copy.deepcopy(params.get("tags") or []),
        "type": "MANAGED_INSTANCES",
    }
    call.state.managed_providers[managed_key(call, name)] = provider
    return Reply(200, {"capacityProvider": copy.deepcopy(provider)})


def update_capacity_provider(call: Call) -> Reply:
    """UpdateCapacityProvider: merge Managed Instances changes; keep managedDraining moto ignores."""
    params = call.params
    managed = call.state.managed_providers.get(managed_key(call, params.get("name", "")))
    if managed is None:
        reply = call.forward(
            {k: v for k, v in params.items() if k not in ("cluster", "managedInstancesProvider")}
        )
        if reply.ok:
            arn = reply.json()["capacityProvider"]["capacityProviderArn"]
            draining = (params.get("autoScalingGroupProvider") or {}).get("managedDraining")
            if draining:
                call.state.asg_patches.setdefault(arn, {})["managedDraining"] = draining
        return reply
    if params.get("cluster") and params["cluster"].rsplit("/", 1)[-1] != managed["cluster"]:
        raise EcsError(
            "ClientException",
            f"The capacity provider {managed['name']} is not in cluster {params['cluster']}.",
        )
    changes = params.get("managedInstancesProvider")
    if not changes:
        raise EcsError(
            "InvalidParameterException", "managedInstancesProvider is required for this capacity provider."
        )
    current = managed["managedInstancesProvider"]
    changes = conform(changes, "ManagedInstancesProvider")
    # InstanceLaunchTemplateUpdate lacks create-only fields (capacityOptionType, fipsEnabled...): keep them.
    template = {**current.get("instanceLaunchTemplate", {}), **changes.pop("instanceLaunchTemplate", {})}
    merged = {**current, **changes, "instanceLaunchTemplate": template}
    managed["managedInstancesProvider"] = merged
    managed["updateStatus"] = "UPDATE_COMPLETE"
    return Reply(200, {"capacityProvider": copy.deepcopy(managed)})


def delete_capacity_provider(call: Call) -> Reply:
    params = call.params
    key = managed_key(call, params.get("capacityProvider", ""))
    managed = call.state.managed_providers.get(key)
    if managed is None:
        reply = call.forward({k: v for k, v in params.items() if k != "cluster"})
        if reply.ok:
            name = reply.json()["capacityProvider"]["name"]
            names = call.state.asg_providers.get(call.where, [])
            if name in names:
                names.remove(name)
        return reply
    del call.state.managed_providers[key]
    gone = {**copy.deepcopy(managed), "status": "INACTIVE", "updateStatus": "DELETE_COMPLETE"}
    return Reply(200, {"capacityProvider": gone})


def describe_capacity_providers(call: Call) -> Reply:
    """DescribeCapacityProviders over moto's ASG providers, FARGATE/FARGATE_SPOT and the overlay's own."""
    params = call.params
    cluster = call.describe_cluster(params["cluster"]) if params.get("cluster") else None
    managed_here = [
        p
        for (*where, _), p in call.state.managed_providers.items()
        if tuple(where) == call.where and (cluster is None or p["cluster"] == cluster["clusterName"])
    ]
    names = params.get("capacityProviders")
    if names is None:
        names = [*FARGATE_PROVIDERS, *call.state.asg_providers.get(call.where, [])]
        if cluster is not None:
            names += [p["name"] for p in managed_here]
    found: dict[str, Json] = {}
    failures: list[Json] = []
    asked_moto: list[str] = []
    for name in names:
        short = name.rsplit("/", 1)[-1]
        if short in FARGATE_PROVIDERS:
            found[name] = _builtin_provider(call, short)
        elif any(p["name"] == short for p in managed_here):
            found[name] = copy.deepcopy(next(p for p in managed_here if p["name"] == short))
        else:
            asked_moto.append(name)
    if asked_moto:
        out = call.moto("DescribeCapacityProviders", {"capacityProviders": asked_moto})
        for provider in out.get("capacityProviders", []):
            key = next(n for n in asked_moto if n in (provider["name"], provider["capacityProviderArn"]))
            found[key] = _patch_asg_provider(call, provider)
        for failure in out.get("failures", []):
            failures.append(
                {
                    **failure,
                    "arn": failure.get("arn", "").replace(":capacity_provider/", ":capacity-provider/"),
                }
            )
    providers = [found[n] for n in names if n in found]
    if cluster is not None:
        associated = set(cluster.get("capacityProviders") or [])
        providers = [p for p in providers if p.get("type") == "MANAGED_INSTANCES" or p["name"] in associated]
    if "TAGS" not in (params.get("include") or []):
        for provider in providers:
            provider.pop("tags", None)
    start = int(params.get("nextToken") or 0)
    size = int(params.get("maxResults") or 10)
    body: Json = {"capacityProviders": providers[start : start + size], "failures": failures}
    if start + size < len(providers):
        body["nextToken"] = str(start + size)
    return Reply(200, body)


def _patch_asg_provider(call: Call, provider: Json) -> Json:
    provider["type"] = "EC2_AUTOSCALING"
    asg = provider.get("autoScalingGroupProvider")
    if asg is not None:
        asg.update(call.state.asg_patches.get(provider["capacityProviderArn"], {}))
    return provider


def capacity_provider_post(call: Call, body: Json) -> Json:
    """Create/Update/Delete replies for ASG providers from moto: add `type` and kept fields."""
    provider = body.get("capacityProvider")
    if provider and provider.get("type") != "MANAGED_INSTANCES":
        body["capacityProvider"] = _patch_asg_provider(call, provider)
    return body
