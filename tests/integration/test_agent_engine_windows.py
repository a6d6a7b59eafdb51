"""Windows over agent-engine rollouts, end to end with a fake clock put at known instants.

A closed maintenance window holds production traffic until it opens; an open freeze window changes
nothing (not one mutating AWS call); a window that closes mid-rollout follows its ``overrun``
(finish, pause, rollback); Europe/Berlin windows across the DST changes of the last Sundays of March
and October open and close at the right instants (cron on wall-clock time, duration in elapsed time,
a gap opening at the first instant after the gap, an ambiguous one at its first occurrence only).

The sandbox clock only moves forward and is shared by the module, so every instant is computed from
"now": the next day, the next 19 December, the next last Sunday of March... The traffic invariant is
checked after every tick (EngineStory.tick).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from gitops_story import EngineStory

BERLIN = ZoneInfo("Europe/Berlin")
_names = itertools.count(1)


def at(day: date, hour: int, minute: int = 0, tz: ZoneInfo = BERLIN) -> datetime:
    """``day hour:minute`` wall-clock time in ``tz``, as UTC (the first one, if it happens twice)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).astimezone(UTC)


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def berlin_day(story: EngineStory, days_ahead: int = 1) -> date:
    """The Berlin calendar day ``days_ahead`` after the story's now."""
    return (story.clock.now() + timedelta(days=days_ahead)).astimezone(BERLIN).date()


def last_sunday(story: EngineStory, month: int) -> date:
    """The next last Sunday of ``month`` at least two days after the story's now (a DST change day)."""
    year = story.clock.now().year
    while True:
        first_next = date(year + (month == 12), month % 12 + 1, 1)
        day = first_next - timedelta(days=1)
        day -= timedelta(days=(day.weekday() - 6) % 7)
        if utc(day, 0) > story.clock.now() + timedelta(days=2):
            return day
        year += 1


def window(
    schedule: str,
    duration: str,
    *,
    kind: str = "maintenance",
    tz: str = "Europe/Berlin",
    overrun: str = "pause",
) -> dict[str, Any]:
    return {"type": kind, "schedule": schedule, "duration": duration, "timezone": tz, "overrun": overrun}


def canary(name: str) -> dict[str, Any]:
    return {
        "type": "canary",
        "canary": {"percent": 10, "bake": "5m"},
        "bake": "5m",
        "rollbackOn": {"alarms": [{"name": f"{name}-5xx"}]},
    }


def linear(step: int, bake: str) -> Callable[[str], dict[str, Any]]:
    def spec(name: str) -> dict[str, Any]:
        return {
            "type": "linear",
            "linear": {"stepPercent": step, "stepBake": bake},
            "bake": "2m",
            "rollbackOn": {"alarms": [{"name": f"{name}-5xx"}]},
        }

    return spec


@pytest.fixture
def story_for(sim_sandbox: Any, tmp_path: Path) -> Iterator[Callable[..., EngineStory]]:
    """An EngineStory (not created yet: the test puts the clock where it wants first)."""
    made: list[EngineStory] = []

    def build(strategy: Callable[[str], dict[str, Any]], windows: dict[str, dict[str, Any]]) -> EngineStory:
        name = f"win{next(_names)}"
        story = EngineStory(sim_sandbox, tmp_path / name, name, strategy(name), windows=windows)
        made.append(story)
        return story

    yield build
    for story in made:
        for alarm in story.alarms:
            sim_sandbox.set_alarm(alarm, "OK")


def first_move(story: EngineStory) -> datetime:
    """When production traffic first left blue after the initial deploy."""
    return next(when for when, (blue, _) in story.moves() if blue < 100)


def waiting(story: EngineStory) -> Callable[[Any], bool]:
    return lambda result: "waiting for maintenance window" in story.status(result)[1]


# -- maintenance and freeze --------------------------------------------------------------------------


def test_closed_maintenance_window_holds_traffic_until_it_opens(story_for: Any) -> None:
    """Outside `nights` (22:00 Berlin, 2h) green is created and made ready, then production traffic waits,
    pending "... ready: waiting for maintenance window nights, opens 22:00 Europe/Berlin" (the day is
    named when it is not today); the first
    weight change happens exactly when the window opens, and the rollout then completes."""
    story = story_for(canary, {"nights": window("0 22 * * *", "2h")})
    story.advance_to(at(berlin_day(story), 12))
    story.create()
    day = berlin_day(story)
    story.advance_to(at(day, 9))
    story.deploy("repo/web:2")

    result = story.run(until=waiting(story))
    opens = at(day, 22)
    assert story.status(result) == (
        "pending",
        f"{story.family}:2 ready: waiting for maintenance window nights, opens 22:00 Europe/Berlin",
    )
    assert result.wake_at == opens
    assert story.labels() == [
        (f"{story.family}:1", "PRIMARY", f"{story.name}-blue"),
        (f"{story.family}:2", "ACTIVE", f"{story.name}-green"),
    ]

    result = story.run()
    assert story.status(result) == ("success", f"{story.family}:2 serving 100 %")
    assert first_move(story) == opens
    assert all(split == (100, 0) for when, split in story.moves() if when < opens)


def test_freeze_window_changes_nothing_until_it_ends(story_for: Any) -> None:
    """During `year-end` (a freeze from 20 December for 14 days) a new commit is pending "frozen by
    year-end until <3 January> 00:00 UTC" and the agent makes no mutating AWS call at all, however often
    it ticks; when the freeze ends the rollout runs."""
    story = story_for(
        canary, {"year-end": window("0 0 20 12 *", "336h", kind="freeze", tz="UTC", overrun="finish")}
    )
    now = story.clock.now()
    year = now.year if now < utc(date(now.year, 12, 18), 0) else now.year + 1
    story.advance_to(utc(date(year, 12, 19), 12))
    story.create()
    story.advance_to(utc(date(year, 12, 21), 9))
    story.aws.counter.reset()
    sha = story.deploy("repo/web:2")

    ends = utc(date(year + 1, 1, 3), 0)
    for _ in range(4):
        result = story.tick()
        assert story.status(result) == ("pending", f"frozen by year-end until {ends:%Y-%m-%d} 00:00 UTC")
        assert result.wake_at == ends
        story.advance(36 * 3600)
    assert story.clock.now() < ends
    assert story.mutating_calls() == {}
    assert story.labels() == [(f"{story.family}:1", "PRIMARY", f"{story.name}-blue")]
    assert story.revisions(story.family) == [f"{story.family}:1"]
    assert story.notes(sha)[story.context]["state"] == "pending"

    story.advance_to(ends)
    result = story.run()
    assert story.status(result) == ("success", f"{story.family}:2 serving 100 %")
    assert first_move(story) >= ends


# -- overrun: a maintenance window that closes mid-rollout ----------------------------------------------


@pytest.mark.parametrize("overrun", ["finish", "pause", "rollback"])
def test_window_closing_mid_rollout_follows_overrun(story_for: Any, overrun: str) -> None:
    """Linear 25 % every 12m in a 30m window (22:00 Berlin): 25 % at 22:00, 50 % at 22:12, 75 % at 22:24,
    and the window closes at 22:30. finish carries on to 100 %; pause holds 75 % until the next opening
    and finishes then; rollback puts traffic back on blue with "maintenance window nights closed
    mid-rollout"."""
    story = story_for(linear(25, "12m"), {"nights": window("0 22 * * *", "30m", overrun=overrun)})
    story.advance_to(at(berlin_day(story), 22, 5))
    story.create()
    day = berlin_day(story)
    story.advance_to(at(day, 21))
    sha = story.deploy("repo/web:2")
    opens, closes = at(day, 22), at(day, 22, 30)

    if overrun == "finish":
        result = story.run()
        assert story.status(result) == ("success", f"{story.family}:2 serving 100 %")
        moves = story.moves()
        assert [(when - opens, split) for when, split in moves if when >= opens] == [
            (timedelta(0), (75, 25)),
            (timedelta(minutes=12), (50, 50)),
            (timedelta(minutes=24), (25, 75)),
            (timedelta(minutes=36), (0, 100)),
        ]
    elif overrun == "pause":
        result = story.run(
            until=lambda r: (
                story.clock.now() > closes
                and story.status(r)[0] == "pending"
                and "waiting" in story.status(r)[1]
            )
        )
        assert story.status(result) == (
            "pending",
            f"linear 75 %: waiting for maintenance window nights, opens {day + timedelta(days=1):%a} 22:00 "
            "Europe/Berlin",
        )
        assert story.split() == (25, 75)
        next_day = at(day + timedelta(days=1), 22)
        assert result.wake_at == next_day
        story.advance(3 * 3600)  # hours later, still closed: the weights hold
        result = story.tick()
        assert story.split() == (25, 75) and story.status(result)[0] == "pending"
        result = story.run()
        assert story.status(result) == ("success", f"{story.family}:2 serving 100 %")
        assert [when for when, split in story.moves() if split == (0, 100)] == [next_day]
    else:
        result = story.run()
        reason = "rolled back: maintenance window nights closed mid-rollout"
        assert story.status(result) == ("failure", reason)
        assert story.notes(sha)[story.context]["description"] == reason
        back = [when for when, split in story.moves() if split == (100, 0) and when > opens]
        assert back and closes <= back[0] <= closes + timedelta(seconds=10)  # woken at the close
        assert story.labels() == [(f"{story.family}:1", "PRIMARY", f"{story.name}-blue")]


def test_alarm_still_rolls_back_while_paused(story_for: Any) -> None:
    """A rollout paused by its window's end (overrun pause) keeps checking alarms: an alarm then rolls
    traffic back on blue on the next tick."""
    story = story_for(linear(50, "20m"), {"nights": window("0 22 * * *", "10m", overrun="pause")})
    story.advance_to(at(berlin_day(story), 22, 5))
    story.create()
    day = berlin_day(story)
    story.advance_to(at(day, 21, 30))
    story.deploy("repo/web:2")
    result = story.run(until=lambda r: "linear 50 %: waiting" in story.status(r)[1])
    assert story.split() == (50, 50)
    story.advance(600)
    story.sandbox.set_alarm(f"{story.name}-5xx", "ALARM")
    result = story.tick()
    assert story.status(result) == ("failure", f"rolled back: alarm {story.name}-5xx in ALARM")
    assert story.split() == (100, 0)


# -- DST in Europe/Berlin ----------------------------------------------------------------------------------


def test_window_spanning_spring_forward_lasts_its_elapsed_duration(story_for: Any) -> None:
    """`0 1 * * *` for 3h on the last Sunday of March opens at 01:00 CET (00:00 UTC) and, its duration being
    elapsed time, closes at 03:00 UTC (05:00 CEST), not at 04:00 wall-clock: a rollout started at 02:30
    UTC moves traffic at once, pauses when the window closes, and the next opening is 01:00 CEST (23:00
    UTC)."""
    story = story_for(linear(25, "20m"), {"dst": window("0 1 * * *", "3h")})
    sunday = last_sunday(story, 3)
    story.advance_to(utc(sunday - timedelta(days=1), 0, 30))  # Saturday 01:30 CET, open
    story.create()
    story.advance_to(utc(sunday, 2, 30))  # 04:30 CEST: open only by elapsed time
    story.deploy("repo/web:2")
    result = story.run(until=waiting(story))
    moved = first_move(story)
    assert utc(sunday, 2, 30) <= moved < utc(sunday, 2, 31)
    assert story.split() == (50, 50)
    assert next(when for when, split in story.moves() if split == (50, 50)) < utc(sunday, 3, 0)
    assert (
        story.status(result)[1]
        == "linear 50 %: waiting for maintenance window dst, opens Mon 01:00 Europe/Berlin"
    )
    assert result.wake_at == utc(sunday, 23, 0) == at(sunday + timedelta(days=1), 1)


def test_window_spanning_fall_back_closes_after_its_elapsed_duration(story_for: Any) -> None:
    """`0 1 * * *` for 3h on the last Sunday of October opens at 01:00 CEST (Saturday 23:00 UTC) and
    closes 3h later, at 02:00 UTC (03:00 CET), not at 04:00 wall-clock: a commit at 02:30 UTC waits, and
    traffic first moves at Monday 01:00 CET (Monday 00:00 UTC)."""
    story = story_for(canary, {"dst": window("0 1 * * *", "3h")})
    sunday = last_sunday(story, 10)
    story.advance_to(utc(sunday - timedelta(days=1), 12))
    story.create()
    story.advance_to(utc(sunday, 2, 30))  # 03:30 CET: closed by elapsed time
    story.deploy("repo/web:2")
    result = story.run(until=waiting(story))
    opens = at(sunday + timedelta(days=1), 1)
    assert opens == utc(sunday, 0, 0) + timedelta(days=1)
    assert story.status(result) == (
        "pending",
        f"{story.family}:2 ready: waiting for maintenance window dst, opens Mon 01:00 Europe/Berlin",
    )
    assert result.wake_at == opens
    story.run()
    assert first_move(story) == opens


@pytest.mark.parametrize(
    ("month", "commit_at", "opens_at"),
    [
        # 02:30 does not exist on the last Sunday of March: the window opens at 03:00 CEST (01:00 UTC).
        (3, (0, 45), (0, 1, 0)),
        # 02:30 happens twice on the last Sunday of October: only the first (00:30 UTC) opens the window;
        # after it closed (01:15 UTC), the next opening is Monday 02:30 CET (01:30 UTC), not 01:30 UTC today.
        (10, (1, 20), (1, 1, 30)),
    ],
    ids=["gap", "ambiguous"],
)
def test_opening_time_in_a_dst_change(
    story_for: Any, month: int, commit_at: tuple[int, int], opens_at: tuple[int, int, int]
) -> None:
    """A `30 2 * * *` window (45m) on a DST change day opens at the first instant after a gap, and at the
    first of two ambiguous 02:30s only; traffic moves exactly then."""
    story = story_for(canary, {"half-past-two": window("30 2 * * *", "45m")})
    sunday = last_sunday(story, month)
    story.advance_to(utc(sunday - timedelta(days=2), 12))
    story.create()
    story.advance_to(utc(sunday, *commit_at))
    story.deploy("repo/web:2")
    result = story.run(until=waiting(story))
    days, hour, minute = opens_at
    opens = utc(sunday + timedelta(days=days), hour, minute)
    assert result.wake_at == opens
    story.run()
    assert first_move(story) == opens
