"""Real ECS output (tests/corpus/ecs-output/) plans as "no change" against the file a user would write.

Each file is a DescribeTaskDefinition / RegisterTaskDefinition or DescribeServices / CreateService /
UpdateService response that ECS produced (SOURCES.md says where each comes from). For each one the
minimal file is derived (read-only fields, nulls, empty values and documented defaults removed) and
both are normalised the way the planner does: the plan is empty whichever side is desired.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agent.manifests.fields import SERVICE_REQUEST_FIELDS as REQUEST_FIELDS
from agent.plan.diff import diff
from agent.plan.service_changes import compared
from agent.plan.services import TASK_SET_FIELDS
from agent.plan.taskdefs import (
    READ_ONLY_FIELDS,
    content_hash,
    minimal_task_definition,
    normalise_task_definition,
    unwrap,
)

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "ecs-output"
FILES = sorted(CORPUS.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


TASK_DEFINITIONS = [p for p in FILES if "containerDefinitions" in json.dumps(_load(p))]
SERVICES = [p for p in FILES if "services" in _load(p)]

# CreateService/UpdateService defaults that normalise_service fills in: (field, default).
SERVICE_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("schedulingStrategy", "REPLICA"),
    ("propagateTags", "NONE"),
    ("enableECSManagedTags", False),
    ("enableExecuteCommand", False),
    ("healthCheckGracePeriodSeconds", 0),
    ("deploymentController", {"type": "ECS"}),
)


def requested(described: dict[str, Any]) -> dict[str, Any]:
    """A DescribeServices entry as a CreateService request, defaults spelt out as ECS described them."""
    service = {k: copy.deepcopy(v) for k, v in described.items() if k in REQUEST_FIELDS and v is not None}
    if service.get("deploymentController", {}).get("type") == "EXTERNAL" and not described.get("taskSets"):
        for key in TASK_SET_FIELDS:  # no task set yet: these belong to the task set a user would write
            service.pop(key, None)
    return service


def minimal_service(described: dict[str, Any]) -> dict[str, Any]:
    """The Service a user would write for a DescribeServices entry, as a CreateService request."""
    service = requested(described)
    for key, default in SERVICE_DEFAULTS:
        if service.get(key) == default:
            del service[key]
    if service.get("platformVersion") == "LATEST":
        del service["platformVersion"]
    config = service.get("deploymentConfiguration")
    if isinstance(config, dict):
        for key, default in (
            ("maximumPercent", 200),
            ("minimumHealthyPercent", 100),
            ("strategy", "ROLLING"),
        ):
            if config.get(key) == default:
                del config[key]
        if config.get("deploymentCircuitBreaker") == {"enable": False, "rollback": False}:
            del config["deploymentCircuitBreaker"]
    awsvpc = (service.get("networkConfiguration") or {}).get("awsvpcConfiguration")
    if isinstance(awsvpc, dict) and awsvpc.get("assignPublicIp") == "DISABLED":
        del awsvpc["assignPublicIp"]
    return service


def test_corpus_is_large_enough() -> None:
    """At least 20 real outputs, task definitions and services both represented."""
    assert len(FILES) >= 20
    assert len(TASK_DEFINITIONS) >= 15 and len(SERVICES) >= 5


def test_every_file_is_listed_in_sources() -> None:
    """SOURCES.md names the origin and licence of every corpus file."""
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    assert [p.name for p in FILES if f"`{p.name}`" not in sources] == []


def test_files_are_real_ecs_output() -> None:
    """Every task definition carries fields only ECS writes (an ARN, a revision)."""
    for path in TASK_DEFINITIONS:
        td = unwrap(_load(path))
        assert "revision" in td or "taskDefinitionArn" in td, path.name


@pytest.mark.parametrize("path", TASK_DEFINITIONS, ids=[p.name[:70] for p in TASK_DEFINITIONS])
def test_minimal_task_definition_plans_no_change(path: Path) -> None:
    """Minimal file vs real output: equal normal forms, no field change either way, one content hash."""
    real = _load(path)
    minimal = minimal_task_definition(real)
    assert not set(minimal) & set(READ_ONLY_FIELDS)
    assert len(json.dumps(minimal)) < len(json.dumps(unwrap(real)))
    a, b = normalise_task_definition(minimal), normalise_task_definition(real)
    assert diff(a, b) == [] and diff(b, a) == []
    assert content_hash(minimal) == content_hash(real)


@pytest.mark.parametrize("path", TASK_DEFINITIONS, ids=[p.name[:70] for p in TASK_DEFINITIONS])
def test_minimal_task_definition_is_a_fixed_point(path: Path) -> None:
    """Deriving the minimal file of a minimal file changes nothing, and it holds no null or default."""
    minimal = minimal_task_definition(_load(path))
    assert minimal_task_definition(minimal) == minimal
    assert "null" not in json.dumps(minimal)


def planned_changes(desired: dict[str, Any], current: dict[str, Any]) -> list[Any]:
    """The planner's own service comparison (agent.plan.service_changes.compared, then diff)."""
    want, have = compared(desired, current)
    return diff(have, want)


@pytest.mark.parametrize("path", SERVICES, ids=[p.name[:70] for p in SERVICES])
def test_minimal_service_plans_no_change(path: Path) -> None:
    """The CreateService a user would write vs what ECS described: no field change either way."""
    for described in _load(path)["services"]:
        minimal = minimal_service(described)
        assert planned_changes(minimal, described) == []
        assert planned_changes(requested(described), minimal) == []
