"""Durations as manifests write them (``90s``, ``5m``, ``1h30m``, ``2h``), and the check of one."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from agent.manifests.checks.context import Context
from agent.manifests.model import Source

# ASCII digits only, like the schema's pattern (Python's \d also matches other scripts' digits).
_DURATION = re.compile(r"^(?=[0-9])(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
MAX_DURATION = timedelta(days=366)  # longer is a typo; much longer would overflow date arithmetic


def parse_duration(text: Any) -> timedelta | None:
    """``90s``, ``5m``, ``1h30m``, ``2h`` -> timedelta; None when it is not such a duration."""
    if not isinstance(text, str):
        return None
    m = _DURATION.match(text)
    if not m:
        return None
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    return timedelta(seconds=min(seconds, int(MAX_DURATION.total_seconds()) + 1))  # no OverflowError


def check_duration(
    ctx: Context, source: Source, pointer: str, value: Any, nonzero: bool = False
) -> timedelta | None:
    d = parse_duration(value)
    if d is None:
        ctx.add(source, pointer, f"{value!r} is not a duration such as 90s, 5m, 1h30m or 2h")
        return None
    if nonzero and d <= timedelta(0):
        ctx.add(source, pointer, f"{value} is zero; it must be longer than that")
    if d > MAX_DURATION:
        ctx.add(source, pointer, f"{value} is longer than a year (8784h); durations may be at most that")
        return None
    return d
