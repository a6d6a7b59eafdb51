"""Status writes are budgeted per commit and context: a day-long bake stays far below GitHub's 1,000."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.reconcile.statuses import MAX_WRITES, RESERVE, Reporter, due, phase_of
from agent.sandbox.git_hosts import FakeGitHub
from agent.sandbox.harness import FakeClock
from agent.status.github import GitHubPublisher
from agent.status.model import CommitStatus
from agent.status.outbox import Outbox
from agent.store.sqlite import SqliteStore

SHA = "c" * 40
WEB = "ecs-gitops/prod/web"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def _left(seconds: int) -> str:
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return " ".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


def test_a_day_long_bake_writes_under_200_statuses_and_the_final_one_lands(
    github: FakeGitHub, tmp_path: Path
) -> None:
    """A tick every minute for 24 h, each with a new countdown: fewer than 200 writes for the service's
    context, every phase change written at once, and the final success delivered."""
    clock = FakeClock(datetime(2026, 6, 2, 10, 0, tzinfo=UTC))
    publisher = GitHubPublisher(github.repository, token=github.token, base_url=github.url, timeout=5)
    store = SqliteStore(tmp_path / "state.db")
    reporter = Reporter(store, Outbox(publisher, clock.monotonic, store=store), clock.now, [])

    reporter.report([CommitStatus(SHA, WEB, "pending", "web:2 canary 10%: shifting traffic")])
    for minute in range(5):
        reporter.report(
            [CommitStatus(SHA, WEB, "pending", f"web:2 canary 10% baking, {_left(300 - 60 * minute)} left")]
        )
        clock.advance(60)
    day = 24 * 3600
    for elapsed in range(0, day, 60):
        reporter.report([CommitStatus(SHA, WEB, "pending", f"web:2 final bake, {_left(day - elapsed)} left")])
        clock.advance(60)
    reporter.report([CommitStatus(SHA, WEB, "success", "web:2 serving 100 %")])

    written = [h for h in github.history if h["context"] == WEB]
    print(f"day-long bake: {len(written)} statuses for {WEB}")
    assert len(written) < 200, len(written)
    assert (
        written[-1]["state"] == "success"
        and github.statuses[SHA][WEB]["description"] == "web:2 serving 100 %"
    )
    phases = [h["description"] for h in written]
    assert phases[0].endswith("shifting traffic") and phases[1].startswith("web:2 canary 10% baking, 5m")
    assert any(p.startswith("web:2 final bake, 24h") for p in phases)  # the phase change went out at once


def test_the_reserve_keeps_room_for_the_final_status() -> None:
    now = datetime(2026, 6, 2, tzinfo=UTC)
    late = (now - timedelta(days=1)).isoformat()
    nearly = {
        "state": "pending",
        "description": "baking, 5m left",
        "writes": MAX_WRITES - RESERVE,
        "at": late,
    }
    assert not due(nearly, "pending", "baking, 4m left", now)  # progress: held back
    assert not due(nearly, "pending", "final bake, 4m left", now)  # even a phase change
    assert due(nearly, "success", "serving 100 %", now)  # the final one always
    full = {**nearly, "writes": MAX_WRITES}
    assert not due(full, "success", "serving 100 %", now)  # GitHub would refuse it anyway


def test_progress_is_spaced_and_phases_are_not() -> None:
    now = datetime(2026, 6, 2, tzinfo=UTC)
    last = {
        "state": "pending",
        "description": "canary 10% baking, 5m left",
        "writes": 3,
        "at": now.isoformat(),
    }
    assert not due(last, "pending", "canary 10% baking, 4m left", now + timedelta(seconds=60))
    assert due(last, "pending", "canary 10% baking, 1m left", now + timedelta(seconds=300))
    assert due(last, "pending", "canary 50% baking, 5m left", now + timedelta(seconds=1))
    assert not due(last, "pending", "canary 10% baking, 5m left", now + timedelta(hours=1))  # unchanged
    assert phase_of("web:5 running 3/4") == phase_of("web:5 running 4/4")
    assert phase_of("canary 10% baking") != phase_of("canary 50% baking")
