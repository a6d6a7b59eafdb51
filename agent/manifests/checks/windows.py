"""Window checks: a five-field cron schedule that fires, an IANA time zone, a non-zero duration."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.manifests.checks.context import Context
from agent.manifests.checks.durations import check_duration
from agent.manifests.model import Manifest


def check_window(ctx: Context, m: Manifest) -> None:
    from croniter import croniter

    spec, src = m.spec, m.source
    schedule = spec.get("schedule")
    if isinstance(schedule, str):
        fields = schedule.split()
        ok = len(fields) == 5
        if ok:
            try:
                ok = bool(croniter.is_valid(schedule))
            except Exception:  # croniter raises odd types for odd input
                ok = False
        if not ok:
            ctx.add(
                src,
                "/spec/schedule",
                f'"{schedule}" is not a valid five-field cron expression (minute hour day month weekday)',
            )
        elif not _fires(croniter, schedule):
            message = f'"{schedule}" never fires (no such date), so the window never opens'
            ctx.add(src, "/spec/schedule", message)
    tz = spec.get("timezone", "UTC")
    if isinstance(tz, str):
        try:
            ZoneInfo(tz)
        except Exception:  # ZoneInfoNotFoundError, ValueError for path-like keys
            ctx.add(src, "/spec/timezone", f'"{tz}" is not an IANA time zone (e.g. Europe/Berlin, UTC)')
    if "duration" in spec:
        check_duration(ctx, src, "/spec/duration", spec["duration"], nonzero=True)


def _fires(croniter: Any, schedule: str) -> bool:
    """A valid cron expression can still name a date that never comes (``0 0 30 2 *``)."""
    try:
        croniter(schedule, datetime(2000, 1, 1)).get_next(datetime)
    except Exception:  # CroniterBadDateError
        return False
    return True
