"""The rolling engine as a transition table: (record, observation) -> (actions, status, record)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.rollout.decisions import APPLY, FAILURE, PENDING, SUCCESS, RolloutRecord
from agent.rollout.rolling import POLL, Deployment, Observation, advance

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def rec(result: str, fp: str = "F2", reason: str = "") -> RolloutRecord:
    return RolloutRecord("sha2", fp, result, "2026-11-24T11:59:00+00:00", "web:5", reason)


def dep(status: str, td: str, state: str | None, running: int = 4, reason: str = "") -> Deployment:
    return Deployment(status, td, state, reason, running, 4)


OUT = Observation(False, "F2", "web:(new)", (dep("PRIMARY", "web:4", "COMPLETED"),))
ROLLED_BACK = Observation(
    False,
    "F2",
    "web:(new)",
    (
        dep("PRIMARY", "web:4", "IN_PROGRESS", 4),
        dep("ACTIVE", "web:5", "FAILED", 0, "tasks failed to start"),
    ),
)
IN_PROGRESS = Observation(
    True, "F2", "web:5", (dep("PRIMARY", "web:5", "IN_PROGRESS", 1), dep("ACTIVE", "web:4", "COMPLETED", 3))
)
DONE = Observation(True, "F2", "web:5", (dep("PRIMARY", "web:5", "COMPLETED"),))
FAILED_NO_ROLLBACK = Observation(True, "F2", "web:5", (dep("PRIMARY", "web:5", "FAILED", 0, "bad"),))

CASES = [
    # id, record, observation, actions, status, record result
    ("out-of-sync applies", rec("succeeded", fp="F1"), OUT, (APPLY,), PENDING, "in_progress"),
    ("first deploy applies", None, OUT, (APPLY,), PENDING, "in_progress"),
    ("in progress is followed", rec("in_progress"), IN_PROGRESS, (), PENDING, "in_progress"),
    ("completed succeeds", rec("in_progress"), DONE, (), SUCCESS, "succeeded"),
    ("circuit-breaker rollback fails", rec("in_progress"), ROLLED_BACK, (), FAILURE, "failed"),
    ("failed content is not retried", rec("failed", reason="rolled back: x"), OUT, (), FAILURE, "failed"),
    ("failed without rollback fails", rec("in_progress"), FAILED_NO_ROLLBACK, (), FAILURE, "failed"),
    ("already deployed succeeds with no record", None, DONE, (), SUCCESS, "succeeded"),
    ("new content after a failure applies", rec("failed", fp="F1"), OUT, (APPLY,), PENDING, "in_progress"),
]


@pytest.mark.parametrize(
    ("record", "obs", "actions", "state", "result"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_transitions(record, obs, actions, state, result) -> None:
    """Each (record, observation) pair leads to the documented actions, status and stored result."""
    d = advance(record, obs, "sha2", NOW)
    assert d.actions == actions
    assert d.state == state
    assert d.record is not None and d.record.result == result
    assert len(d.description) <= 140


def test_rollback_reason_names_the_failed_deployment() -> None:
    """A rollback's failure status carries ECS's own reason for the failed deployment."""
    d = advance(rec("in_progress"), ROLLED_BACK, "sha2", NOW)
    assert d.description == "rolled back: tasks failed to start"


def test_waiting_states_wake_the_loop_and_final_states_do_not() -> None:
    """Pending decisions ask to be woken after the poll interval; final ones ask for nothing."""
    assert advance(rec("in_progress"), IN_PROGRESS, "sha2", NOW).wake_at == NOW + POLL
    assert advance(None, OUT, "sha2", NOW).wake_at == NOW + POLL
    assert advance(rec("in_progress"), DONE, "sha2", NOW).wake_at is None


def test_rollback_reason_falls_back_to_the_newest_failure_event() -> None:
    """Once the failed deployment has drained away, the reason comes from ECS's service events."""
    drained = Observation(False, "F2", "web:(new)", (dep("PRIMARY", "web:4", "COMPLETED"),), (
        "(service web) has reached a steady state.",
        "(service web) (deployment ecs-svc/1) deployment failed: tasks failed to start.",
    ))
    d = advance(rec("in_progress"), drained, "sha2", NOW)
    assert d.description == "rolled back: deployment failed: tasks failed to start."
