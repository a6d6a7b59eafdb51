"""Drift: ECS moved away from what Git asked for, while Git did not move.

The planner only sees desired and observed, so it cannot tell "someone changed the service in the console"
from "the commit changes the service". The caller can: the rollout record in the state store says which
content (fingerprint) last rolled out successfully. A Service whose fingerprint is that one but whose plan
still changes something has drifted. ``mark_drift`` marks those changes, so the plan renders them apart
from changes in Git and the loop knows whether to correct them (``selfHeal``) or only report them.

Not drift: fields under a service's ``ignoreDrift`` pointers (the planner never compares them), and the
``ecs-gitops:managed`` tag the agent adds to services it manages (a service created before the agent
tagged them gets the tag like any change, whatever ``selfHeal`` says).

The words for it read Git first: ``desiredCount 4 -> 7 in ECS`` is 4 in Git and 7 in ECS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from agent.plan.model import ABSENT, DRIFT_HEAL, DRIFT_REPORT, Change, FieldChange, Plan
from agent.plan.services import MANAGED_TAG_KEY

MANAGED_TAG_PATH = f"/tags/{MANAGED_TAG_KEY}"
_MAX_VALUE = 40


def drifted_fields(change: Change) -> tuple[FieldChange, ...]:
    """The fields of a Service change that can be drift (everything but the agent's own marker tag)."""
    return tuple(
        f
        for f in change.fields
        if f.path != MANAGED_TAG_PATH and not f.path.startswith(MANAGED_TAG_PATH + "/")
    )


def mark_drift(plan: Plan, settled: Mapping[str, bool]) -> Plan:
    """``plan`` with the Service changes of ``settled`` services that still change something marked drift.

    ``settled`` maps a Service change name (``cluster/service``) whose desired content already rolled out
    successfully to whether it self-heals.
    """
    changes = []
    for change in plan.changes:
        heal = settled.get(change.name) if change.kind == "Service" else None
        if heal is not None and change.changes_anything and drifted_fields(change):
            change = replace(change, drift=DRIFT_HEAL if heal else DRIFT_REPORT)
        changes.append(change)
    return replace(plan, changes=tuple(changes))


def _short(value: Any) -> str:
    if value is ABSENT:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def describe(change: Change, limit: int = 2) -> str:
    """``desiredCount 4 -> 7 in ECS`` (Git's value first), at most ``limit`` fields then ``+N more``."""
    fields = drifted_fields(change)
    parts = [f"{f.path.lstrip('/') or '/'} {_short(f.new)} -> {_short(f.old)}" for f in fields[:limit]]
    more = f", +{len(fields) - limit} more" if len(fields) > limit else ""
    return f"{', '.join(parts)}{more} in ECS"


def short_name(change: Change) -> str:
    """``web`` for ``prod/web``: how statuses and summaries name a service."""
    return change.name.rsplit("/", 1)[-1]
