"""The field-level diff: JSON-pointer paths, name/key matching, ABSENT sides."""

from __future__ import annotations

from typing import Any

import pytest

from agent.plan.diff import diff, equal, escape
from agent.plan.model import ABSENT, FieldChange


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        ("equal dicts", {"a": 1}, {"a": 1}, []),
        ("scalar changed", {"a": 1}, {"a": 2}, [FieldChange("/a", 1, 2)]),
        ("field added", {}, {"a": 1}, [FieldChange("/a", ABSENT, 1)]),
        ("field removed", {"a": 1}, {}, [FieldChange("/a", 1, ABSENT)]),
        ("nested", {"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2}}}, [FieldChange("/a/b/c", 1, 2)]),
        (
            "containers by name",
            {
                "containerDefinitions": [
                    {"name": "web", "image": "repo/app:v1"},
                    {"name": "log", "image": "fb"},
                ]
            },
            {
                "containerDefinitions": [
                    {"name": "log", "image": "fb"},
                    {"name": "web", "image": "repo/app:v2"},
                ]
            },
            [FieldChange("/containerDefinitions/web/image", "repo/app:v1", "repo/app:v2")],
        ),
        (
            "environment entry added by name",
            {"environment": [{"name": "A", "value": "1"}]},
            {"environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            [FieldChange("/environment/B", ABSENT, {"name": "B", "value": "2"})],
        ),
        (
            "tags by key",
            {"tags": [{"key": "team", "value": "a"}]},
            {"tags": [{"key": "team", "value": "b"}]},
            [FieldChange("/tags/team/value", "a", "b")],
        ),
        (
            "port mappings without names by index",
            {"portMappings": [{"containerPort": 80, "protocol": "tcp"}]},
            {"portMappings": [{"containerPort": 81, "protocol": "tcp"}]},
            [FieldChange("/portMappings/0/containerPort", 80, 81)],
        ),
        (
            "scalar lists whole",
            {"subnets": ["subnet-a", "subnet-b"]},
            {"subnets": ["subnet-a", "subnet-c"]},
            [FieldChange("/subnets", ["subnet-a", "subnet-b"], ["subnet-a", "subnet-c"])],
        ),
        (
            "lists of different length whole",
            {"x": [{"a": 1}]},
            {"x": [{"a": 1}, {"a": 2}]},
            [FieldChange("/x", [{"a": 1}], [{"a": 1}, {"a": 2}])],
        ),
        ("whole subtree added", {}, {"a": {"b": 1}}, [FieldChange("/a", ABSENT, {"b": 1})]),
        ("bool is not int", {"a": True}, {"a": 1}, [FieldChange("/a", True, 1)]),
        ("int equals float", {"a": 10}, {"a": 10.0}, []),
        ("type change", {"a": [1]}, {"a": {"b": 1}}, [FieldChange("/a", [1], {"b": 1})]),
        (
            "name with slash escaped",
            {"env": [{"name": "a/b", "value": "1"}]},
            {"env": [{"name": "a/b", "value": "2"}]},
            [FieldChange("/env/a~1b/value", "1", "2")],
        ),
        ("top-level scalar", 1, 2, [FieldChange("/", 1, 2)]),
    ],
)
def test_diff_table(name: str, old: Any, new: Any, expected: list[FieldChange]) -> None:
    """Each matching rule yields exactly the expected field changes (one row per rule)."""
    assert diff(old, new) == expected, name


def test_diff_prefix() -> None:
    """A path prefix is prepended to every change."""
    assert diff({"a": 1}, {"a": 2}, "/spec") == [FieldChange("/spec/a", 1, 2)]


def test_diff_is_sorted_and_stable() -> None:
    """Changes come out in sorted key order whatever the input order."""
    old = {"b": 1, "a": 1}
    new = {"a": 2, "b": 2}
    assert [c.path for c in diff(old, new)] == ["/a", "/b"]


@pytest.mark.parametrize(("segment", "escaped"), [("web", "web"), ("a/b", "a~1b"), ("x~y", "x~0y")])
def test_escape(segment: str, escaped: str) -> None:
    """JSON-pointer segments are escaped per RFC 6901."""
    assert escape(segment) == escaped


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (True, 1, False),
        (0, False, False),
        (1, 1.0, True),
        ({"a": [True]}, {"a": [True]}, True),
        ([1], [1, 2], False),
    ],
)
def test_equal(a: Any, b: Any, same: bool) -> None:
    """Deep equality distinguishes booleans from numbers but not ints from floats."""
    assert equal(a, b) is same
