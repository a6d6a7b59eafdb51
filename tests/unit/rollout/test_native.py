"""The ecs engine as a transition table: (record, service deployment, windows, alarms) -> (actions,
status, record)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agent.rollout.decisions import APPLY, FAILURE, PENDING, SUCCESS
from agent.rollout.native import (
    ContinueDeployment,
    Deployment,
    Hook,
    NativeRecord,
    Observation,
    StopDeployment,
    Strategy,
    advance,
)
from agent.rollout.windows import OPEN, Window, gate

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday: weekday-nights opens 22:00 Berlin
ARN = "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/abc"
CANARY = Strategy.from_spec(
    {
        "type": "canary",
        "canary": {"percent": 10, "bake": "5m"},
        "bake": "10m",
        "rollbackOn": {"alarms": ["web-5xx"]},
    }
)


def nights(overrun: str = "pause") -> Window:
    return Window.from_spec(
        "weekday-nights",
        {
            "type": "maintenance",
            "schedule": "0 22 * * 1-5",
            "duration": "6h",
            "timezone": "Europe/Berlin",
            "overrun": overrun,
        },
    )


FREEZE = Window.from_spec(
    "year-end-freeze", {"type": "freeze", "schedule": "0 0 20 12 *", "duration": "336h", "overrun": "finish"}
)
CLOSED = gate([nights()], NOW)
OPEN_WINDOW = gate([nights()], NOW.replace(hour=21, minute=30))
FROZEN = gate([FREEZE], datetime(2026, 12, 24, tzinfo=UTC))
# Wednesday 03:00 UTC: the window opened Tuesday 22:00 Berlin closed at 03:00 UTC
CLOSED_AFTER = {
    mode: gate([nights(mode)], datetime(2026, 11, 25, 3, 0, tzinfo=UTC))
    for mode in ("pause", "rollback", "finish")
}


def rec(result: str = "in_progress", fp: str = "F1", **kw) -> NativeRecord:
    base = NativeRecord("sha1" * 10, fp, result, (NOW - timedelta(minutes=3)).isoformat(), "web:5")
    return replace(base, **{"applied": True, "source": "web:4", "deployment": ARN, **kw})


def dep(status: str = "IN_PROGRESS", stage: str | None = "SCALE_UP", weight: float = 0.0, **kw) -> Deployment:
    return Deployment(ARN, status, stage, weight=weight, running=kw.pop("running", 4), requested=4, **kw)


PAUSED = (Hook("hook-1", "PAUSE", "AWAITING_ACTION"),)


def obs(deployment: Deployment | None = None, *, in_sync: bool = True, fp: str = "F1", **kw) -> Observation:
    values = {"target": "web:5", "current": "web:5" if in_sync else "web:4", "gate": OPEN, "tasks": (4, 4)}
    values.update(kw)
    return Observation(
        "sha2" * 10 if fp != "F1" else "sha1" * 10, fp, in_sync, deployment=deployment, **values
    )


CASES = [
    # id, record, observation, actions, state, description (start of), record result
    (
        "out of sync applies",
        None,
        obs(in_sync=False),
        (APPLY,),
        PENDING,
        "rolling out web:5 (canary)",
        "in_progress",
    ),
    (
        "a freeze stops a new rollout",
        None,
        obs(in_sync=False, gate=FROZEN),
        (),
        PENDING,
        "frozen by year-end-freeze until 2027-01-03 00:00 UTC",
        "in_progress",
    ),
    (
        "scaling up is followed",
        rec(),
        obs(dep(running=2)),
        (),
        PENDING,
        "web:5 scaling up: 2/4 tasks",
        "in_progress",
    ),
    (
        "closed window holds the pause",
        rec(),
        obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", hooks=PAUSED), gate=CLOSED),
        (),
        PENDING,
        "waiting for maintenance window weekday-nights, opens 22:00 Europe/Berlin",
        "in_progress",
    ),
    (
        "open window continues",
        rec(),
        obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", hooks=PAUSED), gate=OPEN_WINDOW),
        (ContinueDeployment(ARN, "hook-1"),),
        PENDING,
        "web:5: moving production traffic (window weekday-nights open)",
        "in_progress",
    ),
    (
        "no window continues",
        rec(),
        obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", hooks=PAUSED)),
        (ContinueDeployment(ARN, "hook-1"),),
        PENDING,
        "web:5: moving production traffic",
        "in_progress",
    ),
    (
        "frozen pause holds",
        rec(),
        obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", hooks=PAUSED), gate=FROZEN),
        (),
        PENDING,
        "frozen by year-end-freeze",
        "in_progress",
    ),
    (
        "alarm stops with rollback",
        rec(),
        obs(dep(stage="BAKE_TIME", weight=100.0), alarms={"web-5xx": "ALARM"}),
        (StopDeployment(ARN, "alarm web-5xx in ALARM"),),
        PENDING,
        "rolling back web:5: alarm web-5xx in ALARM",
        "in_progress",
    ),
    (
        "OK alarms change nothing",
        rec(stage="BAKE_TIME"),
        obs(dep(stage="BAKE_TIME", weight=100.0), alarms={"web-5xx": "OK"}),
        (),
        PENDING,
        "web:5 at 100 %, final bake",
        "in_progress",
    ),
    (
        "overrun rollback stops mid-canary",
        rec(),
        obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", weight=10.0), gate=CLOSED_AFTER["rollback"]),
        (StopDeployment(ARN, "maintenance window weekday-nights closed mid-rollout"),),
        PENDING,
        "rolling back web:5: maintenance window weekday-nights closed mid-rollout",
        "in_progress",
    ),
    (
        "overrun rollback at a pause answers ROLLBACK",
        rec(),
        obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", weight=10.0, hooks=PAUSED), gate=CLOSED_AFTER["rollback"]),
        (ContinueDeployment(ARN, "hook-1", "ROLLBACK"),),
        PENDING,
        "rolling back web:5",
        "in_progress",
    ),
    (
        "overrun pause holds at 10 %",
        rec(),
        obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", weight=10.0, hooks=PAUSED), gate=CLOSED_AFTER["pause"]),
        (),
        PENDING,
        "paused at 10 %: maintenance window weekday-nights closed mid-rollout; waiting for",
        "in_progress",
    ),
    (
        "overrun finish carries on",
        rec(),
        obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", weight=10.0, hooks=PAUSED), gate=CLOSED_AFTER["finish"]),
        (ContinueDeployment(ARN, "hook-1"),),
        PENDING,
        "web:5: moving production traffic (maintenance window weekday-nights closed mid-rollout, "
        "overrun finish)",
        "in_progress",
    ),
    (
        "freeze opening mid-canary follows its overrun",
        rec(),
        obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", weight=10.0, hooks=PAUSED), gate=FROZEN),
        (ContinueDeployment(ARN, "hook-1"),),
        PENDING,
        "web:5: moving production traffic (freeze window year-end-freeze opened mid-rollout",
        "in_progress",
    ),
    (
        "ECS rolling back is reported",
        rec(),
        obs(dep("ROLLBACK_IN_PROGRESS", triggered_alarms=("web-5xx",))),
        (),
        PENDING,
        "rolling back web:5: alarm web-5xx in ALARM",
        "in_progress",
    ),
    (
        "rolled back fails",
        rec(reason="alarm web-5xx in ALARM"),
        obs(dep("ROLLBACK_SUCCESSFUL"), in_sync=False),
        (),
        FAILURE,
        "rolled back: alarm web-5xx in ALARM",
        "failed",
    ),
    (
        "hook failure names the hook",
        rec(),
        obs(
            dep(
                "ROLLBACK_SUCCESSFUL",
                reason="Service deployment rolled back because the lifecycle hook h1 at "
                "POST_TEST_TRAFFIC_SHIFT failed.",
            ),
            in_sync=False,
        ),
        (),
        FAILURE,
        "rolled back: the lifecycle hook h1 at POST_TEST_TRAFFIC_SHIFT failed",
        "failed",
    ),
    (
        "failed content is not retried",
        rec("failed", reason="rolled back: x"),
        obs(dep("ROLLBACK_SUCCESSFUL"), in_sync=False),
        (),
        FAILURE,
        "rolled back: x",
        "failed",
    ),
    (
        "successful and in sync succeeds",
        rec(),
        obs(dep("SUCCESSFUL", "CLEAN_UP", 100.0)),
        (),
        SUCCESS,
        "web:5 running 4/4 (canary)",
        "succeeded",
    ),
    (
        "no deployment, in sync: a plain update",
        rec(deployment=None),
        obs(None),
        (),
        SUCCESS,
        "web:5 running 4/4 (canary)",
        "succeeded",
    ),
    (
        "no deployment yet waits for ECS",
        rec(deployment=None, started_at=NOW.isoformat()),
        obs(None, in_sync=False),
        (),
        PENDING,
        "rolling out web:5: waiting for ECS",
        "in_progress",
    ),
    (
        "no deployment after the grace fails",
        rec(deployment=None),
        obs(None, in_sync=False),
        (),
        FAILURE,
        "ECS started no deployment of web:5",
        "failed",
    ),
    (
        "new content after a failure applies",
        rec("failed", fp="F0"),
        obs(dep("ROLLBACK_SUCCESSFUL"), in_sync=False),
        (APPLY,),
        PENDING,
        "rolling out web:5",
        "in_progress",
    ),
]


@pytest.mark.parametrize(
    ("record", "observation", "actions", "state", "description", "result"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_transitions(record, observation, actions, state, description, result) -> None:
    """Each (record, observation) pair leads to the documented actions, status and stored result."""
    decision = advance(record, observation, CANARY, NOW)
    assert decision.actions == actions
    assert decision.state == state
    assert decision.description.startswith(description), decision.description
    assert len(decision.description) <= 140
    assert decision.record is not None and decision.record.result == result
    assert (decision.wake_at is None) == (state != PENDING)


def test_apply_remembers_the_blue_revision() -> None:
    """Applying new content records what ran before it (the revision a revert would go back to)."""
    decision = advance(rec("succeeded", fp="F0"), obs(in_sync=False), CANARY, NOW)
    assert (
        decision.record.applied and decision.record.source == "web:4" and decision.record.deployment is None
    )


def test_closed_window_wakes_when_it_opens() -> None:
    """A pause held for a closed window asks to be woken when the window opens."""
    decision = advance(
        rec(), obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", hooks=PAUSED), gate=CLOSED), CANARY, NOW
    )
    assert decision.wake_at == datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def test_canary_bake_counts_down_from_when_the_step_was_seen() -> None:
    """The description says how long the canary step still bakes, from when the agent first saw it."""
    d = dep(stage="PRODUCTION_TRAFFIC_SHIFT", weight=10.0)
    first = advance(rec(), obs(d), CANARY, NOW)
    assert first.description == "canary 10 % baking, 5 min left"
    later = advance(first.record, obs(d), CANARY, NOW + timedelta(minutes=1, seconds=10))
    assert later.description == "canary 10 % baking, 4 min left"
    assert later.wake_at == NOW + timedelta(minutes=1, seconds=40)  # alarms read at least every 30 s
    end = advance(first.record, obs(d), CANARY, NOW + timedelta(minutes=4, seconds=50))
    assert end.description == "canary 10 % baking, 10 s left"


def test_revert_during_the_bake_stops_with_rollback_and_reports_both_commits() -> None:
    """A new commit asking for the revision the in-flight deployment started from stops it with
    ROLLBACK; when ECS has rolled back, the revert succeeds and the superseded commit has failed."""
    d = dep(stage="PRODUCTION_TRAFFIC_SHIFT", weight=10.0)
    old = rec()
    revert = Observation("c2" * 20, "F2", False, "web:4", "web:5", d, OPEN)
    first = advance(old, revert, CANARY, NOW)
    assert first.actions == (StopDeployment(ARN, f"superseded by {'c2' * 6}"),)
    assert first.description == "rolling back to web:4"
    assert first.other_commits == (("sha1" * 10, FAILURE, f"superseded by {'c2' * 6} before it finished"),)
    assert first.record.revert and first.record.deployment == ARN and first.record.superseded == "sha1" * 10

    rolling_back = advance(first.record, replace(revert, deployment=dep("ROLLBACK_IN_PROGRESS")), CANARY, NOW)
    assert rolling_back.actions == () and rolling_back.state == PENDING
    done = Observation("c2" * 20, "F2", True, "web:4", "web:4", dep("ROLLBACK_SUCCESSFUL"), OPEN)
    final = advance(rolling_back.record, done, CANARY, NOW)
    assert (final.state, final.description, final.actions) == (SUCCESS, "rolled back to web:4", ())


def test_new_content_during_a_rollout_aborts_it_then_applies() -> None:
    """A commit with other content while a deployment is in flight rolls that deployment back first and
    applies the new content once ECS has finished rolling back."""
    d = dep(stage="SCALE_UP")
    newer = Observation("c3" * 20, "F3", False, "web:(new)", "web:5", d, OPEN)
    first = advance(rec(), newer, CANARY, NOW)
    assert first.actions == (StopDeployment(ARN, f"superseded by {'c3' * 6}"),) and not first.record.revert
    after = advance(
        first.record, replace(newer, current="web:4", deployment=dep("ROLLBACK_SUCCESSFUL")), CANARY, NOW
    )
    assert after.actions == (APPLY,) and after.record.source == "web:4"


def test_clean_up_is_not_interrupted() -> None:
    """A deployment already removing blue cannot roll back: a new commit waits for it, then applies."""
    newer = Observation("c3" * 20, "F3", False, "web:6", "web:5", dep(stage="CLEAN_UP", weight=100.0), OPEN)
    decision = advance(rec(), newer, CANARY, NOW)
    assert decision.actions == () and decision.description.startswith("waiting for the deployment in flight")


@pytest.mark.parametrize(
    ("spec", "steps", "step_bake"),
    [
        ({"type": "blueGreen", "bake": "15m"}, (100.0,), timedelta(0)),
        ({"type": "canary", "canary": {"percent": 10, "bake": "5m"}}, (10.0, 100.0), timedelta(minutes=5)),
        (
            {"type": "linear", "linear": {"stepPercent": 25, "stepBake": "2m"}},
            (25.0, 50.0, 75.0, 100.0),
            timedelta(minutes=2),
        ),
        (
            {"type": "linear", "linear": {"stepPercent": 30, "stepBake": "1m"}},
            (30.0, 60.0, 90.0, 100.0),
            timedelta(minutes=1),
        ),
    ],
)
def test_strategy_steps(spec, steps, step_bake) -> None:
    """The traffic steps ECS takes for each strategy: green's production weight after each step."""
    strategy = Strategy.from_spec(spec)
    assert (strategy.steps, strategy.step_bake) == (steps, step_bake)


def test_record_reads_rolling_records_and_ignores_unknown_keys() -> None:
    """A rolling engine's record (no engine key) reads as content already applied; unknown keys from a
    newer agent are ignored."""
    rolling = {
        "sha": "s",
        "fingerprint": "F",
        "result": "succeeded",
        "started_at": NOW.isoformat(),
        "task_definition": "web:4",
        "reason": "",
    }
    record = NativeRecord.from_json(rolling)
    assert record is not None and record.applied and record.engine == "ecs"
    assert NativeRecord.from_json({**record.to_json(), "later": 1}) == record
    assert NativeRecord.from_json(None) is None


@pytest.mark.parametrize(
    "record",
    [
        None,  # the store was lost
        rec("succeeded", fp="F0", deployment=None),  # the agent died after UpdateService reached ECS
        rec("succeeded", deployment="arn:older"),  # a success written by a tick that did not read ECS
    ],
    ids=["no record", "previous content's record", "a success the record cannot prove"],
)
def test_a_deployment_in_flight_of_what_git_asks_is_followed_not_reported_done(record) -> None:
    """The record is only a hint: ECS paused at the agent's PAUSE hook with the service already in sync means
    this content's deployment is under way; the agent continues it and says pending, never success."""
    paused = dep(stage="PRE_PRODUCTION_TRAFFIC_SHIFT", hooks=PAUSED)
    d = advance(record, obs(paused, source="web:4"), CANARY, NOW)
    assert d.actions == (ContinueDeployment(ARN, "hook-1"),)
    assert d.state == PENDING
    assert d.record.result == "in_progress" and d.record.deployment == ARN and d.record.applied
    assert d.record.fingerprint == "F1" and d.record.source == "web:4"
    baking = advance(d.record, obs(dep(stage="PRODUCTION_TRAFFIC_SHIFT", weight=10)), CANARY, NOW)
    assert (baking.actions, baking.state) == ((), PENDING)
    done = advance(baking.record, obs(dep("SUCCESSFUL", stage=None)), CANARY, NOW)
    assert done.state == SUCCESS and done.record.result == "succeeded"


def test_a_rollback_in_flight_is_not_adopted() -> None:
    """A deployment ECS is already rolling back is not this content's to follow: it is left to finish."""
    d = advance(None, obs(dep("ROLLBACK_IN_PROGRESS", stage=None)), CANARY, NOW)
    assert d.state == PENDING and not d.actions
    assert not d.record.applied


def test_a_superseded_rollout_whose_stop_already_finished_is_reported_superseded() -> None:
    """The revert's StopServiceDeployment reached ECS but its tick never ended: the next tick finds the
    rollback done and the service in sync with the revert: success on the revert, failure on the old one."""
    previous = rec(fp="F1")  # sha1..., web:5 rolling out from web:4
    d = advance(previous, obs(None, fp="F2", target="web:4", current="web:4"), CANARY, NOW)
    assert (d.state, d.description) == (SUCCESS, "rolled back to web:4")
    assert d.other_commits == (
        ("sha1" * 10, FAILURE, f"superseded by {('sha2' * 10)[:12]} before it finished"),
    )
