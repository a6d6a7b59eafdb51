"""The rolling follower judges by ECS: a difference left only in how ECS describes what runs (residual
fields) is a warning on success, never a rollback, and never applied again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.rollout.decisions import APPLY, FAILURE, PENDING, SUCCESS, RolloutRecord
from agent.rollout.rolling import FAILED, IN_PROGRESS, SUCCEEDED, Deployment, Observation, advance

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FIELD = "/taskDefinition/containerDefinitions/app/stopTimeout"


def rec(result: str) -> RolloutRecord:
    return RolloutRecord("sha2", "F2", result, "2026-11-24T11:59:00+00:00", "web:(new)")


def obs(*deployments: Deployment, residual: tuple[str, ...] = (FIELD,), target: str = "web:5") -> Observation:
    return Observation(False, "F2", target, deployments, residual=residual)


COMPLETED = Deployment("PRIMARY", "web:5", "COMPLETED", "", 4, 4)
RUNNING = Deployment("PRIMARY", "web:5", "IN_PROGRESS", "", 2, 4)
OLD = Deployment("ACTIVE", "web:4", "COMPLETED", "", 2, 2)


def test_completed_with_a_residual_diff_is_success_with_a_warning_naming_the_field() -> None:
    decision = advance(rec(IN_PROGRESS), obs(COMPLETED), "sha2", NOW)
    assert decision.state == SUCCESS and decision.actions == ()
    assert decision.description.startswith(f"ECS returned {FIELD} that the manifest does not say")
    assert "normaliser gap" in decision.description and len(decision.description) <= 140
    assert decision.record.result == SUCCEEDED


def test_the_next_tick_stays_at_success_and_applies_nothing() -> None:
    decision = advance(rec(SUCCEEDED), obs(COMPLETED), "sha2", NOW)
    assert decision.state == SUCCESS and APPLY not in decision.actions


def test_while_ecs_still_deploys_the_follower_waits() -> None:
    decision = advance(rec(IN_PROGRESS), obs(RUNNING, OLD), "sha2", NOW)
    assert decision.state == PENDING and decision.actions == () and decision.wake_at is not None


def test_a_deployment_ecs_failed_is_a_failure_whatever_the_residual() -> None:
    failed = Deployment("PRIMARY", "web:5", "FAILED", "alarm(s) api-5xx went into ALARM.", 0, 4)
    decision = advance(rec(IN_PROGRESS), obs(failed), "sha2", NOW)
    assert decision.state == FAILURE and "api-5xx" in decision.description
    assert decision.record.result == FAILED


@pytest.mark.parametrize(
    "observation",
    [
        obs(Deployment("PRIMARY", "web:4", "IN_PROGRESS", "", 1, 4)),  # ECS runs another revision
        obs(COMPLETED, target="web:(new)"),  # not registered yet: nothing to compare with
        obs(COMPLETED, residual=()),  # something else differs
    ],
    ids=["another-revision", "unregistered", "no-residual"],
)
def test_without_ecs_running_the_target_the_residual_rule_does_not_apply(observation: Observation) -> None:
    """Then the follower decides as before: applied content that ECS does not run is a rollback."""
    decision = advance(rec(IN_PROGRESS), observation, "sha2", NOW)
    assert decision.state == FAILURE and decision.description.startswith("rolled back")


def test_new_content_is_applied_even_when_the_rest_is_residual() -> None:
    """A commit asking for something new applies; the residual rule is only for content already applied."""
    decision = advance(None, obs(COMPLETED), "sha3", NOW)
    assert decision.actions == (APPLY,) and decision.state == PENDING


def test_in_sync_with_fields_ecs_added_on_registering_is_success_with_the_warning() -> None:
    """In sync (the revision's tag proves it ours) but ECS's answer held a field the request did not: the
    success names it, and the next tick says the same without applying."""
    in_sync = Observation(True, "F2", "web:5", (COMPLETED,), residual=(FIELD,))
    first = advance(rec(IN_PROGRESS), in_sync, "sha2", NOW)
    assert first.state == SUCCESS and first.actions == ()
    assert first.description.startswith(f"ECS returned {FIELD} that the manifest does not say")
    assert first.record.result == SUCCEEDED
    again = advance(first.record, in_sync, "sha2", NOW)
    assert again.actions == () and again.description == first.description


def test_in_sync_without_added_fields_has_no_warning() -> None:
    decision = advance(rec(IN_PROGRESS), Observation(True, "F2", "web:5", (COMPLETED,)), "sha2", NOW)
    assert decision.state == SUCCESS and decision.description == "web:5 running 4/4"
