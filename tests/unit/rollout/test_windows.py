"""Maintenance and freeze windows as tables: (window, now) -> open interval, next opening, gate, text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.rollout.windows import Gate, Window, gate


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(
    name: str, schedule: str, duration: str, tz: str = "UTC", kind: str = "maintenance", **kw
) -> Window:
    return Window.from_spec(
        name, {"type": kind, "schedule": schedule, "duration": duration, "timezone": tz, **kw}
    )


WEEKDAY_NIGHTS = window("weekday-nights", "0 22 * * 1-5", "6h", "Europe/Berlin")
WEEKEND_MORNINGS = window("weekend-mornings", "0 6 * * 0,6", "4h", "Europe/Berlin")
YEAR_END = window("year-end-freeze", "0 0 20 12 *", "336h", kind="freeze")
GAP = window("gap", "30 2 * * *", "1h", "Europe/Berlin")  # 02:30 does not exist on 2025-03-30
AMBIGUOUS = window("ambiguous", "30 2 * * *", "30m", "Europe/Berlin")  # 02:30 happens twice on 2025-10-26
SATURDAY_NIGHT = window("saturday-night", "0 22 * * 6", "6h", "Europe/Berlin")

OCCURRENCES = [
    # id, window, now, expected [open, close) or None
    ("before the opening: closed", WEEKDAY_NIGHTS, "2025-06-10T12:00", None),
    ("after the opening: open", WEEKDAY_NIGHTS, "2025-06-10T21:00", ("2025-06-10T20:00", "2025-06-11T02:00")),
    (
        "exactly at the opening: open",
        WEEKDAY_NIGHTS,
        "2025-06-10T20:00",
        ("2025-06-10T20:00", "2025-06-11T02:00"),
    ),
    (
        "past local midnight: still open",
        WEEKDAY_NIGHTS,
        "2025-06-11T01:59",
        ("2025-06-10T20:00", "2025-06-11T02:00"),
    ),
    ("at the close: closed", WEEKDAY_NIGHTS, "2025-06-11T02:00", None),
    (
        "Friday night runs into Saturday",
        WEEKDAY_NIGHTS,
        "2025-06-14T01:00",
        ("2025-06-13T20:00", "2025-06-14T02:00"),
    ),
    ("Saturday night: no opening", WEEKDAY_NIGHTS, "2025-06-14T21:00", None),
    (
        "winter time: opens 21:00 UTC",
        WEEKDAY_NIGHTS,
        "2025-01-14T21:30",
        ("2025-01-14T21:00", "2025-01-15T03:00"),
    ),
    ("freeze open over new year", YEAR_END, "2026-12-31T23:00", ("2026-12-20T00:00", "2027-01-03T00:00")),
    ("freeze closed after", YEAR_END, "2027-01-03T00:00", None),
    ("freeze closed before", YEAR_END, "2026-12-19T23:59", None),
    (
        "spring forward: gap opening at the gap's end",
        GAP,
        "2025-03-30T01:30",
        ("2025-03-30T01:00", "2025-03-30T02:00"),
    ),
    ("spring forward: not open before the gap's end", GAP, "2025-03-30T00:45", None),
    ("the day before: 02:30 CET", GAP, "2025-03-29T01:45", ("2025-03-29T01:30", "2025-03-29T02:30")),
    (
        "fall back: first 02:30 (CEST) opens",
        AMBIGUOUS,
        "2025-10-26T00:40",
        ("2025-10-26T00:30", "2025-10-26T01:00"),
    ),
    ("fall back: second 02:30 (CET) does not", AMBIGUOUS, "2025-10-26T01:40", None),
    (
        "6h across fall back: 6 elapsed hours (wall 22:00 CEST -> 03:00 CET)",
        SATURDAY_NIGHT,
        "2025-10-26T01:59",
        ("2025-10-25T20:00", "2025-10-26T02:00"),
    ),
    ("6h across fall back: closed after 6 elapsed hours", SATURDAY_NIGHT, "2025-10-26T02:00", None),
    (
        "6h across spring forward: 6 elapsed hours (wall 22:00 CET -> 05:00 CEST)",
        SATURDAY_NIGHT,
        "2025-03-30T02:59",
        ("2025-03-29T21:00", "2025-03-30T03:00"),
    ),
    ("6h across spring forward: closed after 6 elapsed hours", SATURDAY_NIGHT, "2025-03-30T03:00", None),
]


@pytest.mark.parametrize(
    ("win", "now", "expected"), [c[1:] for c in OCCURRENCES], ids=[c[0] for c in OCCURRENCES]
)
def test_occurrence_at(win: Window, now: str, expected: tuple[str, str] | None) -> None:
    """The open interval containing ``now`` follows the cron on local wall time and the DST rules."""
    got = win.occurrence_at(utc(now))
    assert got == (None if expected is None else (utc(expected[0]), utc(expected[1])))


NEXT_OPENINGS = [
    ("later today", WEEKDAY_NIGHTS, "2025-06-10T12:00", "2025-06-10T20:00"),
    ("strictly after an opening", WEEKDAY_NIGHTS, "2025-06-10T20:00", "2025-06-11T20:00"),
    ("over the weekend to Monday", WEEKDAY_NIGHTS, "2025-06-14T03:00", "2025-06-16T20:00"),
    ("into the gap: 03:00 CEST", GAP, "2025-03-29T12:00", "2025-03-30T01:00"),
    ("after the gap day: 02:30 CEST", GAP, "2025-03-30T12:00", "2025-03-31T00:30"),
    ("ambiguous: first occurrence", AMBIGUOUS, "2025-10-25T12:00", "2025-10-26T00:30"),
    ("ambiguous: never the second one", AMBIGUOUS, "2025-10-26T00:31", "2025-10-27T01:30"),
    ("yearly freeze", YEAR_END, "2027-01-03T00:00", "2027-12-20T00:00"),
]


@pytest.mark.parametrize(
    ("win", "now", "expected"), [c[1:] for c in NEXT_OPENINGS], ids=[c[0] for c in NEXT_OPENINGS]
)
def test_next_opening(win: Window, now: str, expected: str) -> None:
    """The next opening is the first opening instant strictly after ``now``, DST rules included."""
    assert win.next_opening(utc(now)) == utc(expected)


def test_from_spec_defaults() -> None:
    """A window spec without timezone or overrun reads UTC and pause; durations are parsed."""
    w = Window.from_spec("w", {"type": "maintenance", "schedule": " 0 1 * * * ", "duration": "1h30m"})
    assert (w.timezone, w.overrun, w.duration, w.schedule) == (
        "UTC",
        "pause",
        timedelta(minutes=90),
        "0 1 * * *",
    )


GATES = [
    # id, windows, now, traffic may move, open maintenance, waiting text, frozen text, last closed
    ("no windows: always", (), "2025-06-10T12:00", True, None, None, None, None),
    (
        "closed: opens later today",
        (WEEKDAY_NIGHTS,),
        "2025-06-10T12:00",
        False,
        None,
        "waiting for maintenance window weekday-nights, opens 22:00 Europe/Berlin",
        None,
        "weekday-nights",
    ),
    ("open", (WEEKDAY_NIGHTS,), "2025-06-10T21:00", True, "weekday-nights", None, None, "weekday-nights"),
    (
        "closed over the weekend: opens Monday",
        (WEEKDAY_NIGHTS,),
        "2025-06-14T03:00",
        False,
        None,
        "waiting for maintenance window weekday-nights, opens Mon 22:00 Europe/Berlin",
        None,
        "weekday-nights",
    ),
    (
        "several windows: any open lets traffic move",
        (WEEKDAY_NIGHTS, WEEKEND_MORNINGS),
        "2025-06-14T05:00",
        True,
        "weekend-mornings",
        None,
        None,
        "weekday-nights",
    ),
    (
        "several windows: waiting for the earliest opening, last closed is the latest close",
        (WEEKDAY_NIGHTS, WEEKEND_MORNINGS),
        "2025-06-14T12:00",
        False,
        None,
        "waiting for maintenance window weekend-mornings, opens Sun 06:00 Europe/Berlin",
        None,
        "weekend-mornings",
    ),
    (
        "frozen: nothing moves even in an open maintenance window",
        (WEEKDAY_NIGHTS, YEAR_END),
        "2026-12-22T21:00",
        False,
        "weekday-nights",
        None,
        "frozen by year-end-freeze until 2027-01-03 00:00 UTC",
        "weekday-nights",
    ),
    (
        "freeze only, closed: always",
        (YEAR_END,),
        "2026-06-01T00:00",
        True,
        None,
        None,
        None,
        None,
    ),
    (
        "a far opening shows its date",
        (window("monthly", "0 22 1 * *", "2h", "Europe/Berlin"),),
        "2025-06-10T12:00",
        False,
        None,
        "waiting for maintenance window monthly, opens 2025-07-01 22:00 Europe/Berlin",
        None,
        "monthly",
    ),
]


@pytest.mark.parametrize(
    ("windows", "now", "moves", "open_name", "waiting", "frozen", "last_closed"),
    [c[1:] for c in GATES],
    ids=[c[0] for c in GATES],
)
def test_gate(windows, now, moves, open_name, waiting, frozen, last_closed) -> None:
    """The gate says whether production traffic may move, and the texts the statuses use."""
    g = gate(windows, utc(now))
    assert g.traffic_may_move is moves
    assert (g.open_maintenance.name if g.open_maintenance else None) == open_name
    if waiting is not None:
        assert g.waiting_text() == waiting
    else:
        assert g.waiting_for is None
    if frozen is not None:
        assert g.frozen_text() == frozen
    else:
        assert g.frozen_by is None
    assert (g.last_closed.name if g.last_closed else None) == last_closed


def test_gate_times() -> None:
    """The gate carries the instants the scheduler wakes at: when the open window closes, when one opens."""
    g = gate((WEEKDAY_NIGHTS,), utc("2025-06-10T21:00"))
    assert (g.closes_at, g.opens_at, g.next_change()) == (
        utc("2025-06-11T02:00"),
        None,
        utc("2025-06-11T02:00"),
    )
    g = gate((WEEKDAY_NIGHTS, YEAR_END), utc("2026-12-24T10:00"))
    assert g.frozen_until == utc("2027-01-03T00:00")
    assert g.opens_at == utc("2026-12-24T21:00")
    assert g.next_change() == utc("2026-12-24T21:00")
    assert Gate().next_change() is None and Gate().traffic_may_move


def test_last_close_finds_the_most_recent_end() -> None:
    """last_close is the end of the latest occurrence that has ended, even across a weekend."""
    assert WEEKDAY_NIGHTS.last_close(utc("2025-06-15T12:00")) == utc("2025-06-14T02:00")
    assert WEEKDAY_NIGHTS.last_close(utc("2025-06-10T21:00")) == utc("2025-06-10T02:00")
    assert SATURDAY_NIGHT.last_close(utc("2025-10-26T12:00")) == utc("2025-10-26T02:00")
