"""A plan in one line, for the ``ecs-gitops/plan`` commit status of a proposed commit.

``3 services change: web image v1→v2, api desiredCount 2→3, worker created`` — services first (what a
reviewer cares about), then other resources, then drift (not the proposal's doing, but worth knowing).
A service's image change is read from its task-definition change; a tag bump on the same repository shows
only the tags. The caller truncates to the host's limit.
"""

from __future__ import annotations

import json
from typing import Any

from agent.plan.drift import drifted_fields, short_name
from agent.plan.model import ABSENT, CREATE, DELETE, Change, Plan

_MAX_VALUE = 30
_KINDS = {"TaskDefinition": "task definition", "Cluster": "cluster", "CapacityProvider": "capacity provider"}
_DONE = {"create": "created", "update": "updated", "register": "registered", "delete": "deleted"}


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def _image_change(old: Any, new: Any) -> str:
    """``v1→v2`` when only the tag changed, else both images."""
    if isinstance(old, str) and isinstance(new, str) and ":" in old and ":" in new:
        old_repo, old_tag = old.rsplit(":", 1)
        new_repo, new_tag = new.rsplit(":", 1)
        if old_repo == new_repo and "/" not in old_tag:
            return f"{old_tag}→{new_tag}"
    return f"{_value(old)}→{_value(new)}"


def _family(service: Change) -> str | None:
    """The task-definition family a Service change runs, from its ``taskDefinition`` field (EXTERNAL
    services, agent engine: in their task set, a whole ``/taskSet`` field when created)."""
    for f in service.fields:
        value = f.new.get("taskDefinition") if f.path == "/taskSet" and isinstance(f.new, dict) else f.new
        if f.path in ("/taskDefinition", "/taskSet/taskDefinition", "/taskSet") and isinstance(value, str):
            return value.rsplit(":", 1)[0] if ":" in value else None
    return None


def _what(service: Change, families: dict[str, Change]) -> str:
    """What happens to one service, in a few words."""
    if service.action == CREATE:
        return "created"
    if service.action == DELETE:
        return "DELETED"
    family = _family(service)
    td = families.get(family) if family else None
    images = [
        (f.path.split("/")[2], f.old, f.new)
        for f in (td.fields if td is not None else ())
        if f.path.startswith("/containerDefinitions/") and f.path.endswith("/image")
    ]
    if images:
        name, old, new = images[0]
        label = "image" if len(images) == 1 else f"{name} image"
        more = f" (+{len(images) - 1} images)" if len(images) > 1 else ""
        return f"{label} {_image_change(old, new)}{more}"
    fields = [f for f in drifted_fields(service) if not f.path.endswith("/taskDefinition")]
    if not fields:
        return "new task definition" if td is not None and td.changes_anything else "updated"
    first = fields[0]
    more = f" (+{len(fields) - 1} more)" if len(fields) > 1 else ""
    return f"{first.path.lstrip('/')} {_value(first.old)}→{_value(first.new)}{more}"


def describe(plan: Plan) -> str:
    """The plan in one line (not truncated)."""
    families = {c.name: c for c in plan.changes if c.kind == "TaskDefinition"}
    services = [c for c in plan.changes if c.kind == "Service" and c.changes_anything and not c.drift]
    served = {_family(s) for s in services}
    others = [
        c
        for c in plan.changes
        if c.kind != "Service"
        and c.changes_anything
        and not (c.kind == "TaskDefinition" and c.name in served)
    ]
    parts = []
    if services:
        noun = "service changes" if len(services) == 1 else "services change"
        items = ", ".join(f"{short_name(s)} {_what(s, families)}" for s in services)
        parts.append(f"{len(services)} {noun}: {items}")
    if others:
        parts.append(
            ", ".join(
                f"{_KINDS.get(c.kind, c.kind)} {c.name} {_DONE.get(c.action, c.action)}" for c in others
            )
        )
    if plan.drifted:
        parts.append(f"{len(plan.drifted)} drifted in ECS: " + ", ".join(short_name(c) for c in plan.drifted))
    if not parts:
        return f"no changes: ECS matches {plan.revision[:12] if plan.revision else 'the manifests'}"
    return "; ".join(parts)
