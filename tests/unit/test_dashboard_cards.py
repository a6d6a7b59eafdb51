"""The dashboard's texts per service (agent.http.cards) and the page that carries the first state."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from agent.http import cards
from agent.http.dashboard import INITIAL_STATE, page
from agent.plan.model import UPDATE, Change, FieldChange
from agent.rollout import windows

T0 = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)  # a Tuesday, 12:00 in Berlin
NIGHTS = windows.Window("weekday-nights", "maintenance", "0 22 * * 1-5", timedelta(hours=6), "Europe/Berlin")
FREEZE = windows.Window("year-end-freeze", "freeze", "0 0 20 12 *", timedelta(days=14), "UTC")


def _live(*items: tuple[str, str, int, int]) -> list[dict[str, object]]:
    return [{"revision": r, "status": s, "running": n, "desired": d} for r, s, n, d in items]


# -- the api card: a blue/green held by a window is waiting, not deployed ---------------------------------

HELD = {"result": "in_progress", "engine": "ecs", "source": "api:1", "task_definition": "api:2",
        "stage": "PRODUCTION_TRAFFIC_SHIFT", "step_weight": 0.0}  # fmt: skip


def test_an_ecs_rollout_held_before_production_traffic_reads_as_waiting() -> None:
    """ECS calls api:2 PRIMARY as soon as it starts; while the PAUSE hook holds production traffic the card
    says api:1 → api:2 and that api:2 waits, and the live list puts api:1 first as the one serving."""
    live = _live(("api:2", "PRIMARY", 3, 3), ("api:1", "ACTIVE", 3, 3))
    source = cards.source_revision("ecs", HELD, "api:2", live)
    weight = cards.production_weight("ecs", HELD, "api:2", None)
    assert (source, weight) == ("api:1", 0.0)
    assert (
        cards.revision_text(source, "api:2", weight) == "api:1 → api:2 (waiting: production traffic on api:1)"
    )
    labels = [d["label"] for d in cards.live_labels(live, source, "api:2", weight, "ecs")]
    assert labels == ["api:1 serving (100 % production) 3/3", "api:2 waiting (0 % production) 3/3"]
    assert not any("PRIMARY" in label for label in labels)


@pytest.mark.parametrize(
    ("weight", "revision", "labels"),
    [
        (10.0, "api:1 → api:2 (10 % of production traffic on api:2)",
         ["api:1 serving (90 % production) 3/3", "api:2 new (10 % production) 3/3"]),
        (100.0, "api:1 → api:2 (all production traffic on api:2)",
         ["api:2 serving (100 % production) 3/3", "api:1 standby (0 % production) 3/3"]),
    ],
)  # fmt: skip
def test_an_ecs_rollout_names_where_production_traffic_is(
    weight: float, revision: str, labels: list[str]
) -> None:
    record = {**HELD, "step_weight": weight}
    live = _live(("api:2", "PRIMARY", 3, 3), ("api:1", "ACTIVE", 3, 3))
    w = cards.production_weight("ecs", record, "api:2", None)
    assert cards.revision_text("api:1", "api:2", w) == revision
    assert [d["label"] for d in cards.live_labels(live, "api:1", "api:2", w, "ecs")] == labels


def test_nothing_in_flight_shows_ecs_words_and_one_revision() -> None:
    live = _live(("api:2", "PRIMARY", 3, 3))
    done = {**HELD, "result": "succeeded"}
    source = cards.source_revision("ecs", done, "api:2", live)
    assert source is None and cards.production_weight("ecs", done, "api:2", None) is None
    assert cards.revision_text(source, "api:2", None) == "api:2"
    assert [d["label"] for d in cards.live_labels(live, source, "api:2", None, "ecs")] == [
        "api:2 PRIMARY 3/3"
    ]


def test_the_agent_engine_reads_the_split_and_blue() -> None:
    record = {"result": "in_progress", "engine": "agent",
              "blue": "arn:aws:ecs:eu-west-1:1:task-definition/web:1"}  # fmt: skip
    traffic = {"production": [{"revision": "web:1", "weight": 90}, {"revision": "web:2", "weight": 10}]}
    assert cards.source_revision("agent", record, "web:2", []) == "web:1"
    assert cards.production_weight("agent", record, "web:2", traffic) == 10.0


# -- the reports card: a desiredCount change says what changes --------------------------------------------


def test_a_desired_count_change_says_what_changes() -> None:
    """A change that keeps the revision: the revision row says so, the changes row says desiredCount 2 → 4,
    before it starts (held by a window: what runs now) and while ECS scales (rolling record in progress)."""
    service = Change("Service", "prod/reports", UPDATE, fields=(FieldChange("/desiredCount", 2, 4),))
    assert cards.change_texts(service, None) == ["desiredCount 2 → 4"]
    live = _live(("reports:1", "PRIMARY", 2, 2))
    held = cards.source_revision("rolling", {"result": "succeeded"}, "reports:1", live, pending=True)
    rolling = cards.source_revision("rolling", {"result": "in_progress"}, "reports:1", live)
    assert held == rolling == "reports:1"
    assert cards.revision_text(held, "reports:1", None) == "reports:1 (revision unchanged)"


def test_an_image_bump_shows_the_tag_and_counts_other_task_definition_fields() -> None:
    td = Change(
        "TaskDefinition",
        "api",
        "register",
        fields=(
            FieldChange("/containerDefinitions/api/image", "repo/api:2.4.1", "repo/api:2.4.2"),
            FieldChange("/containerDefinitions/api/environment/TOKEN/value", "a", "b"),
        ),
    )
    service = Change(
        "Service", "prod/api", UPDATE, fields=(FieldChange("/taskDefinition", "api:1", "api:2"),)
    )
    assert cards.change_texts(service, td) == ["image 2.4.1 → 2.4.2", "task definition: 1 more field"]


# -- one status text, one countdown ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("canary 10 % baking, 5m left", "canary 10 % baking"),
        ("web:2 serving 100 %, final bake 7m left", "web:2 serving 100 %, final bake"),
        ("api:2 at 100 %, final bake, 15 min left", "api:2 at 100 %, final bake"),
        ("canary 10 % baking, 45 s left", "canary 10 % baking"),
        ("canary 10 % baking, 1h30m left", "canary 10 % baking"),
        ("web:2 serving 100 %", "web:2 serving 100 %"),
    ],
)
def test_the_status_countdown_is_left_to_the_page(description: str, expected: str) -> None:
    """The status was written minutes ago ("5m left"); the page's one countdown comes from bakeEndsAt."""
    assert cards.status_text(description, None, counting_down=True) == expected
    assert cards.status_text(description, None, counting_down=False) == description


def test_what_holds_a_service_is_said_once() -> None:
    held = "waiting for maintenance window weekday-nights, opens 22:00 Europe/Berlin"
    assert cards.status_text(f"web:2 ready: {held}", held, False) == f"web:2 ready: {held}"
    assert cards.status_text(held, held, False) == held
    assert (
        cards.status_text("api:2 scaling up: 2/3 tasks", held, False)
        == f"api:2 scaling up: 2/3 tasks — {held}"
    )


def test_native_bake_end_and_phase_come_from_the_record() -> None:
    step = {**HELD, "step_weight": 10.0, "step_since": T0.isoformat()}
    assert cards.native_bake_ends_at(step, timedelta(minutes=5), timedelta(minutes=15)) == T0 + timedelta(
        minutes=5
    )
    assert cards.native_phase(step) == "step"
    final = {**HELD, "stage": "BAKE_TIME", "stage_since": T0.isoformat(), "step_weight": 100.0}
    assert cards.native_bake_ends_at(final, timedelta(minutes=5), timedelta(minutes=15)) == T0 + timedelta(
        minutes=15
    )
    assert cards.native_phase(final) == "final"
    assert cards.native_bake_ends_at(HELD, timedelta(minutes=5), timedelta(minutes=15)) is None
    assert cards.native_phase(HELD) is None


# -- windows in their own zone ----------------------------------------------------------------------------


def test_a_window_reads_in_its_own_zone_like_the_gate() -> None:
    """The windows row and "held by" say one time in one zone: 22:00 Europe/Berlin (not 20:00 UTC)."""
    view = cards.window_view(NIGHTS, T0)
    assert view["text"] == "weekday-nights (maintenance, closed, opens 22:00 Europe/Berlin)"
    assert windows.gate([NIGHTS], T0).waiting_text().endswith("opens 22:00 Europe/Berlin")
    assert view["nextOpening"] == "2026-06-02T20:00:00+00:00"
    inside = cards.window_view(NIGHTS, T0 + timedelta(hours=11))
    assert (
        inside["open"]
        and inside["text"] == "weekday-nights (maintenance, open, closes Wed 04:00 Europe/Berlin)"
    )
    assert (
        cards.window_view(FREEZE, T0)["text"]
        == "year-end-freeze (freeze, closed, opens 2026-12-20 00:00 UTC)"
    )
    assert not re.search(r"\d\d:\d\d UTC", view["text"])


# -- the next tick -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "wake_in", "expected_in"),
    [
        (30, timedelta(minutes=5), timedelta(seconds=33)),  # a 5-minute bake, polled every 30 s (+3 s jitter)
        (30, timedelta(seconds=5), timedelta(seconds=5)),  # the rollout's own wake-up comes first
        (60, None, timedelta(seconds=66)),  # nothing in flight: the next poll
    ],
)
def test_next_tick_by_is_the_wake_up_or_the_next_poll(
    interval: int, wake_in: timedelta | None, expected_in: timedelta
) -> None:
    wake = T0 + wake_in if wake_in is not None else None
    assert cards.next_tick_by(T0, wake, interval) == T0 + expected_in


# -- the first paint -----------------------------------------------------------------------------------


def test_the_page_carries_the_state_and_no_value_closes_its_block() -> None:
    template = f"<html><body><p>x</p>{INITIAL_STATE}</body></html>"
    evil = "</script><script>alert(1)</script> & <!--"
    html = page(template, lambda: {"services": [{"description": evil}]})
    block = re.search(r'<script id="initial-state" type="application/json">(.*?)</script>', html)
    assert block is not None and "<" not in block.group(1) and "&" not in block.group(1)
    assert json.loads(block.group(1)) == {"services": [{"description": evil}]}
    assert html.count("</script>") == 1


def test_a_failing_state_leaves_a_page_that_polls() -> None:
    def broken() -> dict[str, object]:
        raise KeyError("services")

    html = page(f"<body>{INITIAL_STATE}</body>", broken)
    assert '<script id="initial-state" type="application/json">null</script>' in html
    assert page(f"<body>{INITIAL_STATE}</body>", None).count("null") == 1
