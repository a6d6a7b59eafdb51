"""What every resource's change builder shares: finding a resource in what was observed, and the
field changes and tag calls a request makes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from agent.manifests.model import Desired
from agent.plan.diff import diff
from agent.plan.model import ABSENT, FieldChange, TaskDefinitionRef
from agent.plan.services import task_definition_label
from agent.plan.taskdefs import prune
from agent.plan.values import tags_list


def cluster_name(desired: Desired, name: str) -> str:
    """The ECS name of the cluster a manifest calls ``name`` (its ``clusterName``, if set)."""
    manifest = desired.clusters.get(name)
    return str(manifest.spec.get("clusterName") or manifest.name) if manifest else name


def lookup(table: Mapping[Any, Any], *keys: Any) -> Any:
    """The first key of ``keys`` present in ``table`` (ECS name first, manifest name second)."""
    for key in keys:
        if key in table:
            return table[key]
    return None


def active(entry: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """An observed resource, or None when missing or INACTIVE (ECS keeps deleted ones around for a while)."""
    if entry is None or entry.get("status") == "INACTIVE":
        return None
    return entry


def display(value: Any) -> Any:
    """A request as shown in a plan: task-definition references as ``family:revision``."""
    if isinstance(value, TaskDefinitionRef):
        return task_definition_label(value)
    if isinstance(value, Mapping):
        return {k: display(v) for k, v in value.items()}
    if isinstance(value, list):
        return [display(v) for v in value]
    return value


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def top_level(fields: Iterable[FieldChange]) -> list[str]:
    keys: list[str] = []
    for f in fields:
        key = _unescape(f.path.split("/")[1]) if f.path.startswith("/") else f.path
        if key not in keys:
            keys.append(key)
    return keys


def ignore_drift(fields: list[FieldChange], pointers: Iterable[str]) -> list[FieldChange]:
    pointers = [p.rstrip("/") for p in pointers if isinstance(p, str)]
    return [f for f in fields if not any(f.path == p or f.path.startswith(p + "/") for p in pointers)]


def tag_calls(old: Any, new: Any, resource_arn: str | None) -> dict[str, Any]:
    """TagResource / UntagResource parameters that turn tag list ``old`` into ``new``."""
    before = {t["key"]: t["value"] for t in tags_list(old)}
    after = {t["key"]: t["value"] for t in tags_list(new)}
    calls: dict[str, Any] = {}
    added = [{"key": k, "value": v} for k, v in sorted(after.items()) if before.get(k) != v]
    removed = sorted(k for k in before if k not in after)
    if added:
        calls["tagResource"] = {"resourceArn": resource_arn, "tags": added}
    if removed:
        calls["untagResource"] = {"resourceArn": resource_arn, "tagKeys": removed}
    return calls


def creation_fields(request: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    return tuple(diff({}, prune(display(request))))


def leaf_fields(value: Any, path: str = "") -> list[FieldChange]:
    """Every leaf of a request's nested objects as an added field, so a deep shape (a Managed Instances
    launch template's instance requirements) reads one line per setting instead of one cut-off line."""
    if isinstance(value, Mapping) and value:
        out: list[FieldChange] = []
        for key in sorted(value):
            out += leaf_fields(value[key], f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}")
        return out
    return [FieldChange(path, ABSENT, value)]
