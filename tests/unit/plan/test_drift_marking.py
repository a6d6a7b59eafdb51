"""Drift marking, its words, and how plans render drift, deletions and waves."""

from __future__ import annotations

import json

from agent.plan.drift import describe, mark_drift
from agent.plan.model import (
    ABSENT,
    DELETE,
    DRIFT_HEAL,
    DRIFT_REPORT,
    NO_CHANGE,
    UPDATE,
    Change,
    FieldChange,
    Plan,
)
from agent.plan.render import render_json, render_text

MARKER = FieldChange("/tags/ecs-gitops:managed", ABSENT, {"key": "ecs-gitops:managed", "value": "true"})


def _service(name: str, *fields: FieldChange, **kw: object) -> Change:
    action = UPDATE if fields else NO_CHANGE
    return Change("Service", f"prod/{name}", action, f"services/{name}.yaml", fields, {}, "", **kw)  # type: ignore[arg-type]


def _plan(*changes: Change) -> Plan:
    return Plan(tuple(changes), "abc1234")


def test_settled_services_that_still_change_are_drift() -> None:
    """Only services whose content already rolled out are drift; the marker tag alone is not."""
    plan = _plan(
        _service("web", FieldChange("/desiredCount", 7, 4)),
        _service("api", FieldChange("/desiredCount", 1, 3)),
        _service("worker", MARKER),
        _service("reports"),
    )
    marked = mark_drift(plan, {"prod/web": False, "prod/worker": True, "prod/reports": True})
    assert [(c.name, c.drift) for c in marked.changes] == [
        ("prod/web", DRIFT_REPORT),
        ("prod/api", ""),  # Git changed it: not drift
        ("prod/worker", ""),  # the agent's own marker tag
        ("prod/reports", ""),  # nothing differs
    ]
    assert [c.name for c in marked.drifted] == ["prod/web"]
    healed = mark_drift(plan, {"prod/web": True})
    assert healed.changes[0].drift == DRIFT_HEAL


def test_drift_reads_git_first() -> None:
    """desiredCount 4 in Git and 7 in ECS reads "desiredCount 4 -> 7 in ECS"; many fields are cut."""
    change = _service("web", FieldChange("/desiredCount", 7, 4))
    assert describe(change) == "desiredCount 4 -> 7 in ECS"
    many = _service(
        "web",
        FieldChange("/desiredCount", 7, 4),
        FieldChange("/healthCheckGracePeriodSeconds", 0, 30),
        FieldChange("/taskDefinition", "web:2", "web:1"),
    )
    assert describe(many) == "desiredCount 4 -> 7, healthCheckGracePeriodSeconds 30 -> 0, +1 more in ECS"


def test_text_shows_drift_apart_from_git_changes() -> None:
    """A drifted service is marked "!" and listed in its own section, with what the agent does about it."""
    plan = mark_drift(
        _plan(_service("web", FieldChange("/desiredCount", 7, 4)), _service("api", FieldChange("/x", 1, 2))),
        {"prod/web": False},
    )
    lines = render_text(plan).splitlines()
    assert "! Service prod/web (drifted from Git)" in lines
    assert "~ Service prod/api" in lines
    assert "Drift (changed in ECS, not in Git):" in lines
    assert (
        "  ! web: drifted from Git (desiredCount 4 -> 7 in ECS); selfHeal off: reported, not corrected"
        in lines
    )
    assert lines[-1].endswith("; 1 drifted from Git.")
    doc = json.loads(render_json(plan))
    assert doc["drift"] == ["prod/web"]
    assert [c["drift"] for c in doc["changes"]] == ["report", None]


def test_deletes_are_loud() -> None:
    """A pruned service renders as "- ... (DELETE: ...)" and counts in the summary line."""
    delete = Change(
        "Service",
        "prod/old",
        DELETE,
        "",
        (FieldChange("/desiredCount", 2, 0),),
        {"deleteService": {"cluster": "prod", "service": "old", "force": True}},
        "pruned: no longer in Git; scaled to 0, then deleted",
    )
    text = render_text(_plan(delete, _service("web")))
    assert "- Service prod/old (DELETE: pruned: no longer in Git; scaled to 0, then deleted)" in text
    assert "1 to DELETE, 1 unchanged." in text
    assert "\033[1m\033[31m- Service prod/old" in render_text(_plan(delete), color=True)


def test_waves_show_only_when_services_wait() -> None:
    """Service lines carry their wave and what they wait for once some service waits for another."""
    staged = _plan(_service("api", wave=0), _service("web", FieldChange("/x", 1, 2), wave=1, after=("api",)))
    lines = render_text(staged).splitlines()
    assert "= Service prod/api (no change)  [wave 0]" in lines
    assert "~ Service prod/web  [wave 1, after api]" in lines
    flat = render_text(_plan(_service("api", wave=0), _service("web", wave=0)))
    assert "[wave" not in flat
    assert json.loads(render_json(staged))["changes"][1]["after"] == ["api"]
