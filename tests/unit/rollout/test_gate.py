"""The gate: rollouts start only once what they wait for rolled out; failures stop dependants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.plan.ordering import ordering
from agent.rollout.decisions import APPLY, FAILURE, PENDING, SUCCESS, Decision, RolloutRecord
from agent.rollout.ordering import gate

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WAKE = NOW + timedelta(seconds=5)
CHAIN = ordering(
    {
        "migrate": {"cluster": "prod"},
        "api": {"cluster": "prod", "dependsOn": ["migrate"]},
        "web": {"cluster": "prod", "dependsOn": ["api"]},
        "worker": {"cluster": "prod"},
    }
)


def apply() -> Decision:
    record = RolloutRecord("sha", "F2", "in_progress", NOW.isoformat())
    return Decision((APPLY,), record, PENDING, "rolling out", WAKE)


def done() -> Decision:
    return Decision((), None, SUCCESS, "running 2/2")


def failed() -> Decision:
    return Decision((), None, FAILURE, "rolled back: tasks failed to start")


def rolling() -> Decision:
    return Decision((), None, PENDING, "1/2 tasks running", WAKE)


def test_first_of_the_chain_starts_and_the_rest_wait() -> None:
    """Tick 1: migrate and the independent worker start together; api and web wait, woken with migrate."""
    out = gate({"migrate": apply(), "api": apply(), "web": apply(), "worker": apply()}, CHAIN)
    assert APPLY in out["migrate"].actions and APPLY in out["worker"].actions
    assert (out["api"].state, out["api"].description) == (PENDING, "waiting for migrate")
    assert (out["web"].state, out["web"].description) == (PENDING, "waiting for api, migrate")
    assert out["api"].actions == () and out["api"].record is None  # the store keeps the last record
    assert out["api"].wake_at == WAKE


def test_a_dependency_that_succeeded_lets_the_next_start() -> None:
    """Tick 2: migrate succeeded, so api starts; web still waits for api."""
    out = gate({"migrate": done(), "api": apply(), "web": apply(), "worker": rolling()}, CHAIN)
    assert APPLY in out["api"].actions
    assert out["web"].description == "waiting for api"


def test_a_failed_dependency_stops_every_dependant_naming_it() -> None:
    """migrate failed: api and web are failures that name migrate; the independent worker rolls on."""
    out = gate({"migrate": failed(), "api": apply(), "web": apply(), "worker": apply()}, CHAIN)
    assert (out["api"].state, out["api"].description) == (
        FAILURE,
        "not started: dependency migrate failed",
    )
    assert (out["web"].state, out["web"].description) == (
        FAILURE,
        "not started: dependency migrate failed",
    )
    assert APPLY in out["worker"].actions


def test_only_rollouts_are_held() -> None:
    """A dependant with nothing to roll out keeps reporting what it runs, whatever upstream does."""
    out = gate({"migrate": failed(), "api": done(), "web": rolling(), "worker": done()}, CHAIN)
    assert out["api"] == done() and out["web"] == rolling()


def test_running_services_do_not_hold_back() -> None:
    """A service whose failure is reported drift still runs what Git asks: dependants start."""
    out = gate({"migrate": failed(), "api": apply(), "web": done(), "worker": done()}, CHAIN, {"migrate"})
    assert APPLY in out["api"].actions


def test_failure_through_an_earlier_wave_says_so() -> None:
    """A service waiting through wave only (no dependsOn) names the earlier wave that failed."""
    order = ordering({"migrate": {"wave": -1}, "api": {}})
    out = gate({"migrate": failed(), "api": apply()}, order)
    assert out["api"].description == "not started: earlier wave failed: migrate"


def agent_start() -> Decision:
    """The agent engine's first step: a green task set, no APPLY."""
    record = RolloutRecord("sha", "F2", "in_progress", NOW.isoformat())
    return Decision(("CreateTaskSet(web:5)",), record, PENDING, "starting green", WAKE)


def test_an_agent_engine_start_is_held_like_an_apply() -> None:
    """web (agent engine) named in ``starting`` waits for api; not named, its steps go on regardless."""
    out = gate({"migrate": done(), "api": apply(), "web": agent_start()}, CHAIN, starting={"web"})
    assert (out["web"].state, out["web"].description, out["web"].actions) == (PENDING, "waiting for api", ())
    out = gate({"migrate": done(), "api": apply(), "web": agent_start()}, CHAIN)
    assert out["web"].actions == ("CreateTaskSet(web:5)",)

