"""What the dashboard says about one service, as text the page shows as it is (pure functions).

The page writes these strings with ``textContent`` and computes nothing but the live countdown, so
each fact has one source here:

* the revision row: what production traffic runs now → what Git asks for, and where production
  traffic is while a rollout is in flight (``api:1 → api:2 (waiting: production traffic on api:1)``),
  read from the rollout record (the source revision and the green weight the engine last saw) and,
  for the agent engine, the listener weights;
* what a change does when the revision stays the same (``desiredCount 2 → 4``), from the plan;
* the live deployments or task sets, named by their share of production traffic while an ``ecs``
  engine rollout is in flight (ECS calls the new deployment PRIMARY as soon as it starts);
* the status text without a countdown of its own (the page counts down from ``bakeEndsAt``) and
  without repeating what holds it;
* each window in its own zone (the zone its schedule is written in, as the gate's texts say it);
* the time the next tick happens by: the rollout's wake-up or the poll interval, whichever is first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from agent.plan.model import ABSENT, Change
from agent.plan.taskdefs import family_revision
from agent.reconcile.scheduling import poll_jitter
from agent.rollout import windows

IN_PROGRESS = "in_progress"
# ", 5m left", " 7m left", ", 15 min left", ", 45 s left", ", 1h30m left": a status's own countdown
_COUNTDOWN = re.compile(r",?\s*(?:\d+\s*(?:h|min|m|s)\s*)+left\b")
_VALUE_LIMIT = 40


def without_countdown(description: str) -> str:
    """``canary 10 % baking, 5m left`` -> ``canary 10 % baking`` (the page counts down itself)."""
    return _COUNTDOWN.sub("", description).strip()


def status_text(description: str | None, held_by: str | None, counting_down: bool) -> str:
    """The status column: the description (its countdown removed when the page shows one) and what holds
    the service, once: ``web:2 ready: waiting for ...`` already says it and gets nothing added."""
    text = description or ""
    if counting_down:
        text = without_countdown(text)
    if held_by and held_by not in text:
        text = f"{text} — {held_by}" if text else held_by
    return text


# -- windows ------------------------------------------------------------------------------------------


def window_view(window: windows.Window, now: datetime) -> dict[str, Any]:
    """A window for the page: its times as ISO instants and as text in the window's own zone."""
    interval = window.occurrence_at(now)
    opening = window.next_opening(now)
    if interval is not None:
        state = f"open, closes {window.render(interval[1], now)}"
    else:
        state = f"closed, opens {window.render(opening, now)}"
    return {
        "name": window.name,
        "type": window.type,
        "timezone": window.timezone,
        "overrun": window.overrun,
        "open": interval is not None,
        "closesAt": interval[1].isoformat() if interval else None,
        "nextOpening": opening.isoformat(),
        "duration": int(window.duration / timedelta(seconds=1)),
        "text": f"{window.name} ({window.type}, {state})",
    }


# -- what changes -------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if value is ABSENT:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= _VALUE_LIMIT else text[: _VALUE_LIMIT - 1] + "…"


def _image(old: Any, new: Any) -> str:
    """``2.4.1 → 2.4.2`` when only the tag changed, else both images."""
    if isinstance(old, str) and isinstance(new, str) and ":" in old and ":" in new:
        (old_repo, old_tag), (new_repo, new_tag) = old.rsplit(":", 1), new.rsplit(":", 1)
        if old_repo == new_repo and "/" not in old_tag:
            return f"{old_tag} → {new_tag}"
    return f"{_value(old)} → {_value(new)}"


def change_texts(service: Change | None, task_definition: Change | None) -> list[str]:
    """What a commit changes in one service, a few words each: the images of its task definition
    (``image 2.4.1 → 2.4.2``), then the service's own fields (``desiredCount 2 → 4``). The task
    definition's other fields (environment values among them) are not shown, only counted."""
    out: list[str] = []
    td_fields = task_definition.fields if task_definition is not None else ()
    images = [
        f for f in td_fields if f.path.startswith("/containerDefinitions/") and f.path.endswith("/image")
    ]
    for f in images:
        label = "image" if len(images) == 1 else f"{f.path.split('/')[2]} image"
        out.append(f"{label} {_image(f.old, f.new)}")
    others = len(td_fields) - len(images)
    if others:
        out.append(f"task definition: {others} more field{'s' if others > 1 else ''}")
    if service is not None and service.action == "create":
        out.append("service created")
    elif service is not None:
        for f in service.fields:
            if f.path in ("/taskDefinition", "/taskSet/taskDefinition"):
                continue
            out.append(f"{f.path.lstrip('/')} {_value(f.old)} → {_value(f.new)}")
    return out


# -- revisions and production traffic ------------------------------------------------------------------


def _pct(value: float) -> str:
    return f"{value:g} %"


def production_weight(
    engine: str, record: Mapping[str, Any] | None, target: str, traffic: Mapping[str, Any] | None
) -> float | None:
    """The share of production traffic (percent) on the new revision while a rollout is in flight, None
    when the engine does not say (rolling: ECS replaces tasks) or nothing is in flight."""
    if not record or record.get("result") != IN_PROGRESS:
        return None
    if engine == "ecs":
        return float(record.get("step_weight") or 0.0)
    if engine == "agent" and traffic and traffic.get("production"):
        groups = traffic["production"]
        return float(sum(g["weight"] for g in groups if g["revision"] == target))
    return None


def source_revision(
    engine: str,
    record: Mapping[str, Any] | None,
    target: str,
    live: Sequence[Mapping[str, Any]],
    pending: bool = False,
) -> str | None:
    """What production ran when the rollout in flight started: the record's source (``ecs`` engine) or
    blue (agent engine), else the live revision that is not the target (rolling), else the target itself
    (a change that keeps the revision). A change not started yet (``pending``, held by a window): what
    runs now. None: nothing in flight."""
    if not record or record.get("result") != IN_PROGRESS:
        return str(live[0]["revision"]) if pending and live else None
    if engine == "ecs" and record.get("source"):
        return str(record["source"])
    if engine == "agent" and record.get("blue"):
        return family_revision(str(record["blue"]))
    others = [d["revision"] for d in live if d["revision"] != target]
    return others[0] if others else target


def revision_text(source: str | None, target: str, weight: float | None) -> str:
    """The card's revision row: ``api:1 → api:2 (waiting: production traffic on api:1)``, ``web:1 →
    web:2 (10 % of production traffic on web:2)``; ``reports:1 (revision unchanged)`` when a change keeps
    the revision (what it changes is the card's ``changes`` row)."""
    if source is None or source == target:
        return f"{target} (revision unchanged)" if source == target else target
    text = f"{source} → {target}"
    if weight is None:
        return text
    if weight <= 0:
        return f"{text} (waiting: production traffic on {source})"
    if weight >= 100:
        return f"{text} (all production traffic on {target})"
    return f"{text} ({_pct(weight)} of production traffic on {target})"


def live_labels(
    live: Sequence[dict[str, Any]], source: str | None, target: str, weight: float | None, engine: str
) -> list[dict[str, Any]]:
    """Each live deployment with its ``label``: ``api:1 PRIMARY 3/3`` as ECS says it, except while an
    ``ecs`` engine rollout is in flight, when ECS's PRIMARY is the new deployment whatever the traffic:
    then ``api:1 serving (100 % production) 3/3``, ``api:2 waiting (0 % production) 3/3``, the revision
    with most production traffic first."""
    in_flight = engine == "ecs" and weight is not None and source is not None and source != target
    out = []
    for item in live:
        counts = f"{item['running']}/{item['desired']}"
        share: float | None = None
        role = item["status"]
        if in_flight and weight is not None and item["revision"] in (source, target):
            share = weight if item["revision"] == target else 100 - weight
            if item["revision"] == target:
                role = "waiting" if share <= 0 else ("serving" if share >= 100 else "new")
            else:
                role = "serving" if share > 0 else "standby"
            role = f"{role} ({_pct(share)} production)"
        out.append({**item, "production": share, "label": f"{item['revision']} {role} {counts}"})
    if in_flight:
        out.sort(key=lambda d: -(d["production"] if d["production"] is not None else -1))
    return out


# -- bakes and ticks ---------------------------------------------------------------------------------------


def native_bake_ends_at(record: Mapping[str, Any], step_bake: timedelta, bake: timedelta) -> datetime | None:
    """When the bake an ``ecs`` engine rollout is in ends: the final bake from when ECS entered
    BAKE_TIME, a canary or linear step's bake from when its weight was first seen."""
    if record.get("result") != IN_PROGRESS:
        return None
    weight = record.get("step_weight")
    if record.get("stage") == "BAKE_TIME" and record.get("stage_since"):
        return datetime.fromisoformat(str(record["stage_since"])) + bake
    if weight is not None and 0 < float(weight) < 100 and record.get("step_since"):
        return datetime.fromisoformat(str(record["step_since"])) + step_bake
    return None


def native_phase(record: Mapping[str, Any]) -> str | None:
    """``final`` in ECS's BAKE_TIME, ``step`` while part of production traffic has moved."""
    if record.get("result") != IN_PROGRESS:
        return None
    weight = record.get("step_weight")
    if record.get("stage") == "BAKE_TIME":
        return "final"
    if weight is not None and 0 < float(weight) < 100:
        return "step"
    return None


def next_tick_by(last_tick_at: datetime | None, wake_at: datetime | None, interval: float) -> datetime | None:
    """The latest time the next tick starts: the wake-up the last tick asked for, or the next poll
    (``interval`` after the last tick, plus the poll's jitter), whichever comes first. A webhook or a
    file change may tick sooner."""
    if last_tick_at is None:
        return wake_at
    poll = last_tick_at + timedelta(seconds=interval + poll_jitter(interval))
    return min(poll, wake_at) if wake_at is not None else poll
