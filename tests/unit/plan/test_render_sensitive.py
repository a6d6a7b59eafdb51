"""Plans show which environment variable changes, never the value of one that looks like a credential
(by its name or the shape of its value): every rendering masks such a
``containerDefinitions[].environment[].value`` at whatever depth the diff reports it, and shows the rest."""

from __future__ import annotations

import json

from agent.plan.model import ABSENT, REGISTER, Change, FieldChange, Plan
from agent.plan.render import mask, plan_to_dict, render_json, render_text

SECRET, ROTATED = "hunter2", "correct-horse"
CONTAINERS = [
    {
        "name": "web",
        "image": "repo/app:v2",
        "environment": [{"name": "DB_PASSWORD", "value": SECRET}, {"name": "LOG_LEVEL", "value": "info"}],
    }
]


def _plan(*fields: FieldChange) -> Plan:
    request = {"family": "web", "containerDefinitions": CONTAINERS}
    return Plan(
        (Change("TaskDefinition", "web", REGISTER, "taskdefs/web.json", fields, request, "content 1"),)
    )


def test_a_changed_value_reads_sensitive_changed() -> None:
    """A value that differs shows as (sensitive) -> (sensitive, changed), in text and in JSON."""
    path = "/containerDefinitions/web/environment/DB_PASSWORD/value"
    plan = _plan(FieldChange(path, SECRET, ROTATED))
    assert f"    ~ {path}: (sensitive) -> (sensitive, changed)\n" in render_text(plan)
    [field] = plan_to_dict(plan)["changes"][0]["fields"]
    assert field == {"path": path, "old": "(sensitive)", "new": "(sensitive, changed)", "sensitive": True}
    assert SECRET not in render_json(plan) + render_text(plan) and ROTATED not in render_json(plan)


def test_whole_lists_entries_and_requests_are_masked_but_names_stay() -> None:
    """A first registration (the whole containerDefinitions list), an added entry and the JSON request
    all show (sensitive) for values and keep variable names, images and everything else."""
    plan = _plan(
        FieldChange("/containerDefinitions", ABSENT, CONTAINERS),
        FieldChange(
            "/containerDefinitions/web/environment/API_TOKEN", ABSENT, {"name": "API_TOKEN", "value": SECRET}
        ),
        FieldChange("/containerDefinitions/web/image", "repo/app:v1", "repo/app:v2"),
    )
    text, as_json = render_text(plan), render_json(plan)
    assert SECRET not in text and SECRET not in as_json
    assert (
        '+ /containerDefinitions/web/environment/API_TOKEN: {"name": "API_TOKEN", "value": "(sensitive)"}'
        in text
    )
    assert '~ /containerDefinitions/web/image: "repo/app:v1" -> "repo/app:v2"' in text
    request = json.loads(as_json)["changes"][0]["request"]
    assert request["containerDefinitions"][0]["environment"] == [
        {"name": "DB_PASSWORD", "value": "(sensitive)"},
        {"name": "LOG_LEVEL", "value": "info"},
    ]
    fields = json.loads(as_json)["changes"][0]["fields"]
    assert [f.get("sensitive", False) for f in fields] == [True, True, False]


def test_the_plan_keeps_the_values_for_the_executor() -> None:
    """Masking is a rendering: the Plan's request still holds the real value that RegisterTaskDefinition
    must receive, and mask() leaves its input alone."""
    plan = _plan()
    masked = mask(plan.changes[0].request)
    assert masked["containerDefinitions"][0]["environment"][0]["value"] == "(sensitive)"
    assert plan.changes[0].request["containerDefinitions"][0]["environment"][0]["value"] == SECRET


def test_other_values_named_value_are_shown() -> None:
    """Only environment values are masked: a tag's value, a docker label or a secret's valueFrom ARN show."""
    plan = Plan(
        (
            Change(
                "TaskDefinition",
                "web",
                REGISTER,
                "t.json",
                (
                    FieldChange("/tags/team/value", "a", "b"),
                    FieldChange("/containerDefinitions/web/secrets/DB/valueFrom", "arn:1", "arn:2"),
                ),
                {},
                "content 1",
            ),
        )
    )
    text = render_text(plan)
    assert '~ /tags/team/value: "a" -> "b"' in text and '"arn:1" -> "arn:2"' in text


def test_ordinary_values_show_and_credential_shapes_are_masked_whatever_their_name() -> None:
    """PORT and LOG_LEVEL changes are shown; an AWS access key id under an innocent name, or a URL with a
    password, is masked."""
    plan = _plan(
        FieldChange("/containerDefinitions/web/environment/PORT/value", "8080", "9090"),
        FieldChange("/containerDefinitions/web/environment/LOG_LEVEL/value", "info", "debug"),
        FieldChange("/containerDefinitions/web/environment/UPSTREAM/value", "AKIAABCDEFGHIJKLMNOP", "x"),
        FieldChange("/containerDefinitions/web/environment/DB_URL/value", ABSENT, "pg://app:pw@db:5432/app"),
    )
    text = render_text(plan)
    assert '~ /containerDefinitions/web/environment/PORT/value: "8080" -> "9090"' in text
    assert '~ /containerDefinitions/web/environment/LOG_LEVEL/value: "info" -> "debug"' in text
    assert (
        "~ /containerDefinitions/web/environment/UPSTREAM/value: (sensitive) -> (sensitive, changed)" in text
    )
    assert "AKIA" not in text and "pw@" not in text
