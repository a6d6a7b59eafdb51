"""Service-level defaults of deploymentConfiguration: absent and the default compare the same, both ways.

One case per row of the "Service defaults" table of docs/manifests.md that ``normalise_service`` applies
inside ``deploymentConfiguration`` (resetOnHealthyTask, canary and linear step settings).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.plan.diff import diff
from agent.plan.services import STEP_DEFAULTS, normalise_service

BASE: dict[str, Any] = {
    "serviceName": "web",
    "cluster": "prod",
    "taskDefinition": "web:3",
    "desiredCount": 2,
}

# (deploymentConfiguration without the field, the same with the default written, one with another value)
ROWS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "resetOnHealthyTask",
        {"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        {"deploymentCircuitBreaker": {"enable": True, "rollback": True, "resetOnHealthyTask": True}},
        {"deploymentCircuitBreaker": {"enable": True, "rollback": True, "resetOnHealthyTask": False}},
    ),
    (
        "canaryPercent",
        {"strategy": "CANARY", "canaryConfiguration": {"canaryBakeTimeInMinutes": 10}},
        {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 10}},
        {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 20.0, "canaryBakeTimeInMinutes": 10}},
    ),
    (
        "canaryBakeTimeInMinutes",
        {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 5.0}},
        {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 5, "canaryBakeTimeInMinutes": 10}},
        {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 3}},
    ),
    (
        "canaryConfiguration",
        {"strategy": "CANARY"},
        {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 10}},
        {"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 10}},
    ),
    (
        "stepPercent",
        {"strategy": "LINEAR", "linearConfiguration": {"stepBakeTimeInMinutes": 6}},
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10.0, "stepBakeTimeInMinutes": 6}},
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 6}},
    ),
    (
        "stepBakeTimeInMinutes",
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10.0}},
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10, "stepBakeTimeInMinutes": 6}},
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10.0, "stepBakeTimeInMinutes": 1}},
    ),
    (
        "linearConfiguration",
        {"strategy": "LINEAR"},
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10.0, "stepBakeTimeInMinutes": 6}},
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10.0, "stepBakeTimeInMinutes": 2}},
    ),
]


def service(config: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(BASE), "deploymentConfiguration": copy.deepcopy(config)}


@pytest.mark.parametrize(("name", "absent", "written", "other"), ROWS, ids=[r[0] for r in ROWS])
def test_absent_and_default_compare_the_same(
    name: str, absent: dict[str, Any], written: dict[str, Any], other: dict[str, Any]
) -> None:
    a, b = normalise_service(service(absent)), normalise_service(service(written))
    assert diff(a, b) == [] and diff(b, a) == []


@pytest.mark.parametrize(("name", "absent", "written", "other"), ROWS, ids=[r[0] for r in ROWS])
def test_another_value_still_counts(
    name: str, absent: dict[str, Any], written: dict[str, Any], other: dict[str, Any]
) -> None:
    a, o = normalise_service(service(absent)), normalise_service(service(other))
    assert diff(a, o) != [] and diff(o, a) != []


def test_normalising_is_idempotent() -> None:
    for _, absent, _, _ in ROWS:
        once = normalise_service(service(absent))
        assert normalise_service(once) == once


def test_a_rolling_service_gets_no_canary_or_linear_configuration() -> None:
    normal = normalise_service(service({"strategy": "ROLLING"}))
    assert not set(STEP_DEFAULTS) & set(normal["deploymentConfiguration"])
