"""Services the agent manages that no manifest names any more (found by the observer when ``sync.prune``
is on): the DELETE change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.plan.model import ABSENT, DELETE, Change, FieldChange


def prune_change(cluster: str, service_name: str, current: Mapping[str, Any], warnings: list[str]) -> Change:
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
