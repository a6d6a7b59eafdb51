"""Rendering plans as terraform-like text and as stable JSON."""

from __future__ import annotations

import json

import pytest

from agent.plan.model import (
    ABSENT,
    CREATE,
    NO_CHANGE,
    REGISTER,
    REUSE,
    UPDATE,
    Change,
    FieldChange,
    Plan,
    TaskDefinitionRef,
)
from agent.plan.render import format_value, render_json, render_text

WEB_1 = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:1"
API_3 = "arn:aws:ecs:eu-west-1:123456789012:task-definition/api:3"
REF = TaskDefinitionRef("web", "a1b2c3d4e5f6a7b8", None)
WARNING = "Service prod/web: launchType cannot be changed by UpdateService; requires re-creating the service"


def _plan() -> Plan:
    return Plan(
        revision="abc1234",
        warnings=(WARNING,),
        changes=(
            Change(
                "Cluster",
                "prod",
                CREATE,
                "platform/clusters.yaml",
                (FieldChange("/clusterName", ABSENT, "prod"),),
                {"clusterName": "prod"},
                "cluster does not exist",
            ),
            Change(
                "TaskDefinition",
                "web",
                REGISTER,
                "taskdefs/web.json",
                (FieldChange("/containerDefinitions/web/image", "repo/app:v1", "repo/app:v2"),),
                {"family": "web"},
                "content a1b2c3d4e5f6a7b8 differs from web:1",
            ),
            Change(
                "TaskDefinition",
                "api",
                REUSE,
                "taskdefs/api.json",
                (),
                {"taskDefinitionArn": API_3},
                "content 0011223344556677 matches api:3",
            ),
            Change(
                "Service",
                "prod/web",
                UPDATE,
                "services/web.yaml",
                (
                    FieldChange("/taskDefinition", "web:1", "web:(new)"),
                    FieldChange("/tags/old", {"key": "old", "value": "x"}, ABSENT),
                ),
                {"updateService": {"cluster": "prod", "service": "web", "taskDefinition": REF}},
                "2 field(s) differ",
            ),
            Change("Service", "prod/api", NO_CHANGE, "services/api.yaml", (), {}, "matches"),
        ),
    )


def test_text_has_terraform_like_lines() -> None:
    """Resources, changed fields, warnings and the summary appear as terraform-style lines."""
    text = render_text(_plan(), color=False)
    lines = text.splitlines()
    assert lines[0] == "ecs-gitops plan for abc1234"
    assert "+ Cluster prod (create)" in lines
    assert '    + /clusterName: "prod"' in lines
    assert "+ TaskDefinition web (register new revision, content a1b2c3d4e5f6a7b8)" in lines
    assert '    ~ /containerDefinitions/web/image: "repo/app:v1" -> "repo/app:v2"' in lines
    assert "= TaskDefinition api (reuse api:3, content 0011223344556677)" in lines
    assert "~ Service prod/web" in lines
    assert '    ~ /taskDefinition: "web:1" -> "web:(new)"' in lines
    assert '    - /tags/old: {"key": "old", "value": "x"}' in lines
    assert "= Service prod/api (no change)" in lines
    assert f"  ! {WARNING}" in lines
    assert lines[-1] == "Plan: 1 to create, 1 to update, 1 to register, 1 to reuse, 1 unchanged."


def test_no_ansi_without_color() -> None:
    """Without colour the text has no escape sequences; with colour it has them."""
    assert "\033[" not in render_text(_plan(), color=False)
    coloured = render_text(_plan(), color=True)
    assert "\033[32m" in coloured and "\033[0m" in coloured


def test_no_changes_line() -> None:
    """A plan that changes nothing says so, naming the revision."""
    plan = Plan(changes=(Change("Service", "prod/api", NO_CHANGE, "services/api.yaml"),), revision="abc1234")
    assert render_text(plan).splitlines()[-1] == "No changes. ECS matches abc1234."
    assert render_text(Plan(changes=())).splitlines()[-1] == "No changes. ECS matches the manifests."


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (ABSENT, "(none)"),
        ("x", '"x"'),
        (3, "3"),
        ({"b": 1, "a": [True]}, '{"a": [true], "b": 1}'),
        (REF, '{"arn": null, "contentHash": "a1b2c3d4e5f6a7b8", "family": "web"}'),
    ],
)
def test_format_value(value: object, text: str) -> None:
    """Values render as one-line JSON with sorted keys."""
    assert format_value(value) == text


def test_long_values_are_cut() -> None:
    """A long value (a whole container definition) is cut to the limit with an ellipsis."""
    text = format_value({"image": "x" * 500})
    assert len(text) == 120 and text.endswith("…")


def test_json_shape() -> None:
    """The JSON document is stable, marks absent sides and spells out task-definition references."""
    out = render_json(_plan())
    assert out == render_json(_plan())
    doc = json.loads(out)
    assert doc["formatVersion"] == 1
    assert doc["revision"] == "abc1234"
    assert doc["hasChanges"] is True
    assert doc["summary"] == {
        "create": 1,
        "update": 1,
        "no-change": 1,
        "register": 1,
        "reuse": 1,
        "delete": 0,
    }
    assert doc["warnings"] == list(_plan().warnings)
    cluster = doc["changes"][0]
    assert cluster["fields"] == [{"path": "/clusterName", "old": None, "new": "prod", "absent": ["old"]}]
    web = doc["changes"][3]
    assert web["fields"][0] == {"path": "/taskDefinition", "old": "web:1", "new": "web:(new)"}
    assert web["fields"][1]["absent"] == ["new"]
    assert web["request"]["updateService"]["taskDefinition"] == {
        "family": "web",
        "contentHash": "a1b2c3d4e5f6a7b8",
        "arn": None,
    }
    assert [c["changesAnything"] for c in doc["changes"]] == [True, True, False, True, False]
    assert out.index('"action"') < out.index('"changesAnything"') < out.index('"kind"')  # sorted keys
