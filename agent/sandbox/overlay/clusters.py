"""Clusters in the overlay: capacity providers checked on create and update, UpdateClusterSettings, and
replies trimmed like ECS trims them.

moto does not implement UpdateClusterSettings, accepts unknown capacity providers, and always
returns settings/configuration (real ECS only with include=SETTINGS / CONFIGURATIONS).
"""

from __future__ import annotations

from agent.sandbox.overlay.calls import Call, EcsError, Json, Reply
from agent.sandbox.overlay.capacity_providers import FARGATE_PROVIDERS, managed_key, normalise_strategy


def _check_cluster_providers(
    call: Call, cluster_name: str | None, providers: list[str] | None, strategy: list[Json] | None
) -> None:
    providers = providers or []
    for name in providers:
        if name in FARGATE_PROVIDERS or name in call.state.asg_providers.get(call.where, []):
            continue
        managed = call.state.managed_providers.get(managed_key(call, name))
        if managed and managed["cluster"] == (cluster_name or "default").rsplit("/", 1)[-1]:
            continue
        raise EcsError(
            "InvalidParameterException",
            f"The specified capacity provider {name} is not in an ACTIVE state or does not exist.",
        )
    for item in strategy or []:
        if item.get("capacityProvider") not in providers:
            raise EcsError(
                "InvalidParameterException",
                "The specified capacity provider strategy contains a capacity provider "
                f"({item.get('capacityProvider')}) that is not associated with the cluster.",
            )


def create_cluster(call: Call) -> Reply:
    params = call.params
    _check_cluster_providers(
        call,
        params.get("clusterName"),
        params.get("capacityProviders"),
        params.get("defaultCapacityProviderStrategy"),
    )
    return call.forward()


def put_cluster_capacity_providers(call: Call) -> Reply:
    params = call.params
    call.describe_cluster(params.get("cluster"))
    _check_cluster_providers(
        call,
        params.get("cluster"),
        params.get("capacityProviders"),
        params.get("defaultCapacityProviderStrategy"),
    )
    return call.forward()


def update_cluster_settings(call: Call) -> Reply:
    """UpdateClusterSettings (not in moto): moto's UpdateCluster takes the same settings."""
    params = call.params
    call.describe_cluster(params.get("cluster"))
    return call.forward(
        {"cluster": params.get("cluster"), "settings": params.get("settings") or []}, "UpdateCluster"
    )


def _normalise_cluster(cluster: Json) -> Json:
    if cluster.get("defaultCapacityProviderStrategy"):
        cluster["defaultCapacityProviderStrategy"] = normalise_strategy(
            cluster["defaultCapacityProviderStrategy"]
        )
    return cluster


def cluster_post(call: Call, body: Json) -> Json:
    """Create/Update/PutClusterCapacityProviders/Delete replies: strategies echoed with defaults."""
    if body.get("cluster"):
        body["cluster"] = _normalise_cluster(body["cluster"])
    return body


def describe_clusters_post(call: Call, body: Json) -> Json:
    include = set(call.params.get("include") or [])
    for cluster in body.get("clusters") or []:
        _normalise_cluster(cluster)
        if "SETTINGS" not in include:
            cluster.pop("settings", None)
        if "CONFIGURATIONS" not in include:
            cluster.pop("configuration", None)
    return body
