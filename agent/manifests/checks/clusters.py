"""Clusters and capacity providers: known providers, reserved names, and the agent config's allow-lists."""

from __future__ import annotations

import re
from typing import Any

from agent.manifests.checks.context import Context, items_of
from agent.manifests.model import Manifest

FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


def allowed_clusters(config: Any) -> tuple[str, ...] | None:
    """The agent config's cluster allow-list (``clusters.allow``), None when any cluster is allowed."""
    clusters = getattr(config, "clusters", None)
    allow = getattr(clusters, "allow", None)
    if allow is None:
        return None
    return tuple(str(a) for a in allow)


def account_clusters(config: Any) -> tuple[str, ...] | None:
    """Every cluster the agent config's ``accounts`` list, None when it lists no account."""
    accounts = getattr(config, "accounts", None) or ()
    if not accounts:
        return None
    return tuple(str(c) for a in accounts for c in a.clusters)


def provider_known(ctx: Context, name: Any) -> bool:
    return name in FARGATE_PROVIDERS or name in ctx.names["CapacityProvider"]


def unknown_provider(name: Any) -> str:
    return (
        f'no CapacityProvider named "{name}" (use FARGATE, FARGATE_SPOT or a CapacityProvider '
        "manifest's name)"
    )


def check_cluster(ctx: Context, m: Manifest) -> None:
    spec, src = m.spec, m.source
    listed = spec.get("capacityProviders")
    for i, name in enumerate(items_of(listed)):
        if not provider_known(ctx, name):
            ctx.add(src, f"/spec/capacityProviders/{i}", unknown_provider(name))
    for i, item in enumerate(items_of(spec.get("defaultCapacityProviderStrategy"))):
        name = item.get("capacityProvider") if isinstance(item, dict) else None
        pointer = f"/spec/defaultCapacityProviderStrategy/{i}/capacityProvider"
        if not provider_known(ctx, name):
            ctx.add(src, pointer, unknown_provider(name))
        elif isinstance(listed, list) and name not in listed:
            ctx.add(src, pointer, f'"{name}" must also be listed in capacityProviders')


def check_capacity_provider(ctx: Context, m: Manifest) -> None:
    if re.match(r"(?i)^(aws|ecs|fargate)", m.name):
        ctx.add(
            m.source, "/metadata/name", f'"{m.name}": ECS reserves names starting with aws, ecs or fargate'
        )


def _cluster_name(ctx: Context, ref: str) -> str:
    target = ctx.names["Cluster"].get(ref)
    if target is not None:
        return str(target.spec.get("clusterName") or target.name)
    return ref


_CLUSTER_ARN = re.compile(r"^arn:aws[a-z-]*:ecs:[^:]*:([^:]*):cluster/")


def listed_accounts(config: Any) -> set[str]:
    """The account ids the agent config's ``accounts`` give (``accountId``, or the one in ``roleArn``)."""
    return {str(a.account) for a in getattr(config, "accounts", None) or () if getattr(a, "account", None)}


def _foreign_account(ctx: Context, cluster: str) -> str | None:
    """Why a cluster given as an ARN may not be used: it names an account ``accounts`` does not list."""
    match = _CLUSTER_ARN.match(cluster)
    if match is None or match.group(1) in listed_accounts(ctx.config):
        return None
    return (
        f"names account {match.group(1)}, which no entry of the agent config's accounts lists "
        "(accountId or roleArn); name the cluster instead, or list its account"
    )


def check_allow_list(ctx: Context) -> None:
    """Clusters must be in ``clusters.allow`` (when set) and in one of the ``accounts`` (when listed); a
    cluster given as an ARN must name an account ``accounts`` lists."""
    for e in ctx.entries:
        cluster = e.manifest.spec.get("cluster") if e.valid else None
        if e.manifest.kind in ("Service", "CapacityProvider") and isinstance(cluster, str):
            why = _foreign_account(ctx, cluster)
            if why:
                ctx.add(e.manifest.source, "/spec/cluster", f'cluster "{cluster}" {why}')
    rules: list[tuple[set[str], str]] = []
    allow = allowed_clusters(ctx.config)
    if allow is not None:
        rules.append((set(allow), f"is not in the agent config's allow-list ({', '.join(allow) or 'empty'})"))
    listed = account_clusters(ctx.config)
    if listed is not None:
        rules.append(
            (set(listed), f"is in no account of the agent config (accounts[].clusters: {', '.join(listed)})")
        )
    if not rules:
        return
    for e in ctx.entries:
        m = e.manifest
        if not e.valid:
            continue
        if m.kind == "Cluster":
            name, pointer = _cluster_name(ctx, m.name), "/metadata/name"
            if "clusterName" in m.spec:
                pointer = "/spec/clusterName"
        elif m.kind in ("Service", "CapacityProvider") and isinstance(m.spec.get("cluster"), str):
            name, pointer = _cluster_name(ctx, m.spec["cluster"]), "/spec/cluster"
        else:
            continue
        for allowed, why in rules:
            if name not in allowed:
                ctx.add(m.source, pointer, f'cluster "{name}" {why}')
