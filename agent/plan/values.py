"""Manifest values as the ECS API takes them: resolved references, alarm names, tags, durations."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_DURATION_RE = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")


def duration_seconds(value: Any) -> int:
    """``"90s"`` -> 90, ``"5m"`` -> 300, ``"1h30m"`` -> 5400 (an int is taken as seconds)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _DURATION_RE.match(str(value).strip())
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {value!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def duration_minutes(value: Any) -> int:
    """A duration in whole minutes, rounded up (ECS bake times are minutes): ``"5m"`` -> 5, ``"90s"`` -> 2."""
    return math.ceil(duration_seconds(value) / 60)


def ref(value: Any) -> Any:
    """A resolved reference as the string the API takes (tolerates ``{arn: ...}`` / ``{name: ...}``)."""
    if isinstance(value, Mapping):
        for key in ("arn", "id", "name"):
            if isinstance(value.get(key), str):
                return value[key]
    return value


def alarm_name(value: Any) -> Any:
    """DeploymentAlarms takes alarm names: the name of an alarm ARN, or the reference itself."""
    value = ref(value)
    if isinstance(value, str) and value.startswith("arn:") and ":alarm:" in value:
        return value.split(":alarm:", 1)[1]
    return value


def tags_list(tags: Any) -> list[dict[str, str]]:
    """``{k: v}`` (manifest) or ``[{key, value}]`` (API) as the API's list, sorted by key."""
    if isinstance(tags, Mapping):
        items = [{"key": str(k), "value": "" if v is None else str(v)} for k, v in tags.items()]
    elif isinstance(tags, list):
        items = [
            {"key": str(t.get("key")), "value": str(t.get("value", ""))}
            for t in tags
            if isinstance(t, Mapping) and t.get("key") is not None
        ]
    else:
        items = []
    return sorted(items, key=lambda t: t["key"])
