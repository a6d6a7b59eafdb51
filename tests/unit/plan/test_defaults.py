"""Every documented task-definition default: absent and the default plan the same, in both directions.

One case per row of ``agent/plan/defaults.py`` (and of docs/manifests.md, which lists the same rows).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agent.plan.defaults import CONDITIONAL, DEFAULTS, Default, split
from agent.plan.diff import diff
from agent.plan.taskdefs import content_hash, minimal_task_definition, normalise_task_definition

DOCS = Path(__file__).resolve().parents[3] / "docs" / "manifests.md"

BASE: dict[str, Any] = {
    "family": "web",
    "requiresCompatibilities": ["EC2"],
    "containerDefinitions": [{"name": "app", "image": "repo/app:v1", "memory": 256}],
}

# What else the object holding a field needs to be realistic (keyed by the holder's path).
CONTEXT: dict[str, dict[str, Any]] = {
    "/containerDefinitions/*/portMappings/*": {"containerPort": 80},
    "/containerDefinitions/*/mountPoints/*": {"sourceVolume": "data", "containerPath": "/data"},
    "/containerDefinitions/*/volumesFrom/*": {"sourceContainer": "other"},
    "/containerDefinitions/*/healthCheck": {"command": ["CMD", "true"]},
    "/containerDefinitions/*/linuxParameters": {"maxSwap": 512},
    "/containerDefinitions/*/logConfiguration": {"logDriver": "awslogs"},
    "/containerDefinitions/*/logConfiguration/options": {"awslogs-group": "web"},
    "/containerDefinitions/*/firelensConfiguration": {"type": "fluentbit"},
    "/volumes/*": {"name": "data"},
    "/volumes/*/efsVolumeConfiguration": {"fileSystemId": "fs-1"},
    "/volumes/*/efsVolumeConfiguration/authorizationConfig": {"accessPointId": "fsap-1"},
    "/volumes/*/dockerVolumeConfiguration": {"labels": {"team": "web"}},
}
# Rows whose holder needs something else for the field to mean anything.
ROW_CONTEXT: dict[str, dict[str, Any]] = {
    "/containerDefinitions/*/restartPolicy/restartAttemptPeriod": {"enabled": True},
    "/runtimePlatform/operatingSystemFamily": {"cpuArchitecture": "ARM64"},
    "/runtimePlatform/cpuArchitecture": {"operatingSystemFamily": "LINUX"},
    "/volumes/*/efsVolumeConfiguration/transitEncryption": {"rootDirectory": "/data"},
}


ABSENT = object()


def with_field(row: Default, value: Any) -> dict[str, Any]:
    """BASE with ``value`` at the row's path (``*`` = first item), or without it when value is ABSENT."""
    body = copy.deepcopy(BASE)
    parts = split(row.path)
    node: Any = body
    prefix = ""
    for index, part in enumerate(parts[:-1]):
        prefix += f"/{part}"
        context = copy.deepcopy(CONTEXT.get(prefix, {}))
        if index == len(parts) - 2:
            context.update(ROW_CONTEXT.get(row.path, {}))
        if part == "*":
            if not node:
                node.append(context)
            node = node[0]
            continue
        if part not in node:
            node[part] = [] if parts[index + 1] == "*" else context
        node = node[part]
    if value is not ABSENT:
        node[parts[-1]] = value
    return body


IDS = [d.path.removeprefix("/").replace("/*/", ".").replace("/", ".") for d in DEFAULTS]


@pytest.mark.parametrize("row", DEFAULTS, ids=IDS)
def test_absent_and_default_plan_the_same(row: Default) -> None:
    """Writing the default and leaving it out normalise alike: no change whichever side is desired."""
    written, absent = with_field(row, row.value), with_field(row, ABSENT)
    a, b = normalise_task_definition(written), normalise_task_definition(absent)
    assert diff(a, b) == [] and diff(b, a) == []
    assert content_hash(written) == content_hash(absent)


@pytest.mark.parametrize("row", DEFAULTS, ids=IDS)
def test_a_value_other_than_the_default_still_counts(row: Default) -> None:
    """The field is not ignored: any other value is a change, in both directions."""
    other, absent = with_field(row, row.other), with_field(row, ABSENT)
    assert diff(normalise_task_definition(other), normalise_task_definition(absent)) != []
    assert diff(normalise_task_definition(absent), normalise_task_definition(other)) != []


@pytest.mark.parametrize("row", DEFAULTS, ids=IDS)
def test_the_minimal_file_leaves_the_default_out(row: Default) -> None:
    """minimal_task_definition drops the default and keeps any other value."""
    leaf = split(row.path)[-1]
    assert f'"{leaf}"' not in _json(minimal_task_definition(with_field(row, row.value)))
    assert f'"{leaf}"' in _json(minimal_task_definition(with_field(row, row.other)))


_C = {"name": "a", "image": "i", "portMappings": [{"containerPort": 80}]}


@pytest.mark.parametrize(
    ("body", "written"),
    [
        ({"requiresCompatibilities": ["EC2"]}, {"networkMode": "bridge"}),
        ({"requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512"}, {"networkMode": "awsvpc"}),
        (
            {"networkMode": "awsvpc", "containerDefinitions": [_C]},
            {"containerDefinitions": [{**_C, "portMappings": [{"containerPort": 80, "hostPort": 80}]}]},
        ),
        (
            {"networkMode": "bridge", "containerDefinitions": [_C]},
            {"containerDefinitions": [{**_C, "portMappings": [{"containerPort": 80, "hostPort": 0}]}]},
        ),
        (
            {"containerDefinitions": [{"name": "a", "image": "i"}]},
            {"containerDefinitions": [{"name": "a", "image": "i", "cpu": 0}]},
        ),
    ],
    ids=["bridge-on-ec2", "awsvpc-on-fargate", "hostPort-awsvpc", "hostPort-0-bridge", "container-cpu-0"],
)
def test_conditional_defaults(body: dict[str, Any], written: dict[str, Any]) -> None:
    """Defaults that depend on other fields (network mode, port mappings, container cpu)."""
    absent = {"family": "web", "containerDefinitions": [{"name": "a", "image": "i"}], **body}
    spelt = {**absent, **written}
    a, b = normalise_task_definition(spelt), normalise_task_definition(absent)
    assert diff(a, b) == [] and diff(b, a) == []
    assert normalise_task_definition(minimal_task_definition(spelt)) == b


def test_a_disabled_restart_policy_is_no_policy() -> None:
    """restartPolicy with enabled false (whatever else it says) is the same as no restartPolicy."""
    container = {"name": "a", "image": "i", "restartPolicy": {"enabled": False, "ignoredExitCodes": [0]}}
    a = normalise_task_definition({"family": "f", "containerDefinitions": [container]})
    b = normalise_task_definition({"family": "f", "containerDefinitions": [{"name": "a", "image": "i"}]})
    assert a == b


def test_docs_table_lists_every_row() -> None:
    """docs/manifests.md has one table row per documented default, with its sentence."""
    text = DOCS.read_text(encoding="utf-8")
    for row in DEFAULTS:
        assert f"`{row.path}`" in text, row.path
        assert row.sentence.split(" (")[0][:60] in text, row.path
    for path, _, _ in CONDITIONAL:
        assert f"`{path}`" in text, path


def _json(value: Any) -> str:
    return json.dumps(value)
