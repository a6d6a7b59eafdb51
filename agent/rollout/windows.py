"""Maintenance and freeze windows: when a window is open, when it next opens, and what that means.

A window is a cron ``schedule`` read on the local wall clock of its IANA ``timezone``, open for
``duration`` of elapsed time from each opening. Across daylight-saving transitions:

* an opening whose wall-clock time does not exist (spring forward) opens at the first instant after
  the gap: ``30 2 * * *`` in Europe/Berlin on 2025-03-30 opens at 03:00 CEST (01:00 UTC);
* an opening whose wall-clock time happens twice (fall back) opens at its first occurrence only:
  ``30 2 * * *`` on 2025-10-26 opens at 02:30 CEST (00:30 UTC), not again at 02:30 CET;
* ``duration`` counts elapsed time: ``0 22 * * 6`` for 6h opened on Saturday 2025-10-25 at 22:00 CEST
  closes at 03:00 CET (the wall clock moved five hours), and on 2025-03-29 at 22:00 CET it closes at
  05:00 CEST (seven wall-clock hours); both are six real hours.

Worked examples (``weekday-nights``: ``0 22 * * 1-5``, 6h, Europe/Berlin; ``year-end-freeze``:
``0 0 20 12 *``, 14 days, UTC):

====================  ==================================  ===========================================
now (UTC)             gate                                text
====================  ==================================  ===========================================
Tue 2025-06-10 12:00  maintenance closed, opens 20:00 UTC  waiting for maintenance window
                                                          weekday-nights, opens 22:00 Europe/Berlin
Tue 2025-06-10 21:00  open until Wed 02:00 UTC             traffic may move
Sat 2025-06-14 03:00  closed (Friday's opening closed     waiting for maintenance window
                      Sat 02:00 UTC); next Mon 20:00 UTC   weekday-nights, opens Mon 22:00 Europe/Berlin
2026-12-24 10:00      frozen until 2027-01-03 00:00 UTC    frozen by year-end-freeze until
                                                          2027-01-03 00:00 UTC
====================  ==================================  ===========================================

All datetimes in and out are timezone-aware UTC; opening times are rendered in the window's zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from agent.plan.services import duration_seconds

MAINTENANCE, FREEZE = "maintenance", "freeze"
# How far the wall clock may be from UTC-derived local time around a transition (DST shifts are at
# most 2 h anywhere); candidate openings are searched from this far beyond ``now``.
_SLACK = timedelta(hours=3)


@dataclass(frozen=True)
class Window:
    """One Window manifest (or an inline window spec)."""

    name: str
    type: str  # "maintenance" | "freeze"
    schedule: str  # five-field cron, local wall clock of ``timezone``
    duration: timedelta
    timezone: str = "UTC"
    overrun: str = "pause"  # "finish" | "pause" | "rollback"

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> Window:
        """Build from a Window ``spec``: ``duration`` like ``"6h"``, ``timezone`` default UTC, ``overrun``
        default pause."""
        return cls(
            name=name,
            type=str(spec["type"]),
            schedule=str(spec["schedule"]).strip(),
            duration=timedelta(seconds=duration_seconds(spec["duration"])),
            timezone=str(spec.get("timezone") or "UTC"),
            overrun=str(spec.get("overrun") or "pause"),
        )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def occurrence_at(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The ``[opens, closes)`` interval (UTC) containing ``now``, or None while the window is closed."""
        opening = self._latest_opening(now)
        if opening is not None and now < opening + self.duration:
            return opening, opening + self.duration
        return None

    def next_opening(self, now: datetime) -> datetime:
        """The first opening instant (UTC) strictly after ``now``."""
        it = croniter(self.schedule, _wall(now - _SLACK, self.zone))
        while True:
            instant = _instant(it.get_next(datetime), self.zone)
            if instant > now:
                return instant

    def last_close(self, now: datetime) -> datetime | None:
        """When the window most recently closed at or before ``now`` (None if never within a year)."""
        it = croniter(self.schedule, _wall(now + _SLACK, self.zone))
        limit = now - timedelta(days=366) - self.duration
        while True:
            opening = _instant(it.get_prev(datetime), self.zone)
            if opening < limit:
                return None
            if opening + self.duration <= now:
                return opening + self.duration

    def render(self, instant: datetime, now: datetime | None = None) -> str:
        """``22:00 Europe/Berlin`` when ``instant`` is on ``now``'s local date, ``Mon 22:00 ...`` within a
        week, else ``2027-01-03 00:00 ...`` (all in the window's own zone)."""
        local = instant.astimezone(self.zone)
        if now is not None:
            today = now.astimezone(self.zone).date()
            if local.date() == today:
                return f"{local:%H:%M} {self.timezone}"
            if today < local.date() < today + timedelta(days=7):
                return f"{local:%a %H:%M} {self.timezone}"
        return f"{local:%Y-%m-%d %H:%M} {self.timezone}"

    def _latest_opening(self, now: datetime) -> datetime | None:
        it = croniter(self.schedule, _wall(now + _SLACK, self.zone))
        limit = now - timedelta(days=366) - self.duration
        while True:
            opening = _instant(it.get_prev(datetime), self.zone)
            if opening <= now:
                return opening
            if opening < limit:  # pragma: no cover - get_prev only goes backwards
                return None


@dataclass(frozen=True)
class Gate:
    """What a service's windows say at one instant.

    ``traffic_may_move`` is the question every production traffic step asks; ``frozen_by`` blocks
    every new rollout; ``last_closed`` tells an interrupted rollout which ``overrun`` to follow.
    """

    frozen_by: Window | None = None
    frozen_until: datetime | None = None
    maintenance: tuple[Window, ...] = ()
    open_maintenance: Window | None = None
    closes_at: datetime | None = None
    waiting_for: Window | None = None
    opens_at: datetime | None = None
    last_closed: Window | None = None
    now: datetime | None = None  # when the gate was computed (renders "today" vs "Mon")

    @property
    def traffic_may_move(self) -> bool:
        """Not frozen, and no maintenance window listed or one of them open."""
        return self.frozen_by is None and (not self.maintenance or self.open_maintenance is not None)

    def waiting_text(self) -> str:
        """``waiting for maintenance window weekday-nights, opens 22:00 Europe/Berlin``."""
        if self.waiting_for is None or self.opens_at is None:
            return "waiting for a maintenance window"
        return (
            f"waiting for maintenance window {self.waiting_for.name}, "
            f"opens {self.waiting_for.render(self.opens_at, self.now)}"
        )

    def frozen_text(self) -> str:
        """``frozen by year-end-freeze until 2027-01-03 00:00 UTC``."""
        if self.frozen_by is None or self.frozen_until is None:
            return "not frozen"
        return f"frozen by {self.frozen_by.name} until {self.frozen_by.render(self.frozen_until)}"

    def next_change(self) -> datetime | None:
        """The next instant this gate may answer differently (a window opening or closing)."""
        times = [t for t in (self.frozen_until, self.closes_at, self.opens_at) if t is not None]
        return min(times) if times else None


OPEN = Gate()  # a service without windows


def gate(windows: Sequence[Window], now: datetime) -> Gate:
    """Evaluate a service's windows at ``now`` (see the module docstring for examples)."""
    frozen_by: Window | None = None
    frozen_until: datetime | None = None
    for window in windows:
        if window.type != FREEZE:
            continue
        interval = window.occurrence_at(now)
        if interval is not None and (frozen_until is None or interval[1] > frozen_until):
            frozen_by, frozen_until = window, interval[1]

    maintenance = tuple(w for w in windows if w.type == MAINTENANCE)
    open_maintenance: Window | None = None
    closes_at: datetime | None = None
    waiting_for: Window | None = None
    opens_at: datetime | None = None
    last_closed: Window | None = None
    last_close: datetime | None = None
    for window in maintenance:
        interval = window.occurrence_at(now)
        if interval is not None and (closes_at is None or interval[1] > closes_at):
            open_maintenance, closes_at = window, interval[1]
        closed = window.last_close(now)
        if closed is not None and (last_close is None or closed > last_close):
            last_closed, last_close = window, closed
    if maintenance and open_maintenance is None:
        for window in maintenance:
            opening = window.next_opening(now)
            if opens_at is None or opening < opens_at:
                waiting_for, opens_at = window, opening
    return Gate(
        frozen_by=frozen_by,
        frozen_until=frozen_until,
        maintenance=maintenance,
        open_maintenance=open_maintenance,
        closes_at=closes_at,
        waiting_for=waiting_for,
        opens_at=opens_at,
        last_closed=last_closed,
        now=now,
    )


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """``instant`` as a naive wall-clock time in ``zone`` (what croniter iterates over)."""
    return instant.astimezone(zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a cron wall-clock time opens at: the first occurrence of an ambiguous time, the
    end of the gap for a time that does not exist."""
    first = wall.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc  # exists (fold=0 is the first of two occurrences when ambiguous)
    # In the gap: fold=1 reads it with the offset after the transition, fold=0 with the one before, so
    # the transition lies between the two readings; find it to the second.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = utc
    if low > high:
        low, high = high, low
    after = high.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).utcoffset() == after:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0) if high.microsecond else high
