"""Clusters: the CreateCluster request from a manifest, its normal form, and the change."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from agent.manifests.model import Manifest
from agent.plan.diff import diff
from agent.plan.model import CREATE, NO_CHANGE, UPDATE, Change
from agent.plan.observed import Observed
from agent.plan.resources import active, creation_fields, lookup, tag_calls, top_level
from agent.plan.taskdefs import prune
from agent.plan.values import tags_list


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


def cluster_change(
    manifest: Manifest, observed: Observed, scoped_all: set[str], warnings: list[str]
) -> Change:
    name = str(manifest.spec.get("clusterName") or manifest.name)
    scoped = {cp for cp in scoped_all if cp in (manifest.spec.get("capacityProviders") or [])}
    request = cluster_request(manifest, scoped)
    current = active(lookup(observed.clusters, name, manifest.name))
    source = manifest.source.file
    later = f"; {', '.join(sorted(scoped))} attached by their own cluster field" if scoped else ""
    if current is None:
        return Change(
            "Cluster",
            name,
            CREATE,
            source,
            creation_fields(request),
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
    changed = top_level(fields)
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
        calls.update(tag_calls(have.get("tags"), want.get("tags"), current.get("clusterArn")))
    return Change(
        "Cluster", name, UPDATE, source, tuple(fields), calls, f"{len(fields)} field(s) differ{later}"
    )
