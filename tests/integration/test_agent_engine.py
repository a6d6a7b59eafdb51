"""The agent engine end to end: a real git repository, the agent, the sim sandbox over HTTP, a fake clock.

Each test runs ``engine: agent`` rollouts of one service ``web`` (EngineStory: a load balancer, target
groups, listener rules and alarms of its own) and asserts the traffic invariant after EVERY tick:
the listener weights sum to 100 and never send traffic to a target group without a stable task set.
Strategies go to success; alarms during each bake, failed hooks and reverts roll back at once.
Windows (maintenance, freeze, overrun, DST) are in test_agent_engine_windows.py; crashes in
test_agent_engine_crash.py.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gitops_story import EngineStory

from agent.sandbox.hooks import SIGNATURE_HEADER, HookReceiver, signature

SECRET = "hook-s3cret"
STAGES = [
    "preScaleUp",
    "postScaleUp",
    "testTraffic",
    "postTestTraffic",
    "preProductionTraffic",
    "postProductionTraffic",
]
_names = itertools.count(1)


def canary(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "canary",
        "canary": {"percent": 10, "bake": "5m"},
        "bake": "10m",
        "rollbackOn": {"alarms": [{"name": f"{name}-5xx"}, {"name": f"{name}-p99"}]},
        **extra,
    }


def linear(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "linear",
        "linear": {"stepPercent": 25, "stepBake": "2m"},
        "bake": "3m",
        "rollbackOn": {"alarms": [{"name": f"{name}-5xx"}]},
        **extra,
    }


def blue_green(name: str, **extra: Any) -> dict[str, Any]:
    return {"type": "blueGreen", "bake": "4m", "rollbackOn": {"alarms": [{"name": f"{name}-5xx"}]}, **extra}


STRATEGIES = {"canary": canary, "linear": linear, "blueGreen": blue_green}


@pytest.fixture
def make(sim_sandbox: Any, tmp_path: Path) -> Iterator[Callable[..., EngineStory]]:
    """Build an EngineStory with a name of its own (``e1``, ``e2``...) and create its service."""
    made: list[EngineStory] = []

    def build(strategy: Callable[..., dict[str, Any]] | dict[str, Any], **kwargs: Any) -> EngineStory:
        name = f"eng{next(_names)}"
        spec = strategy(name) if callable(strategy) else strategy
        story = EngineStory(sim_sandbox, tmp_path / name, name, spec, **kwargs)
        story.create()
        made.append(story)
        return story

    yield build
    for story in made:  # alarms back to OK for whoever reuses the sandbox
        for alarm in story.alarms:
            sim_sandbox.set_alarm(alarm, "OK")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[HookReceiver]:
    """A hook receiver checking the agent's HMAC signature (the agent reads ECS_GITOPS_HOOK_SECRET)."""
    monkeypatch.setenv("ECS_GITOPS_HOOK_SECRET", SECRET)
    with HookReceiver(secret=SECRET) as running:
        yield running


def _hooks(url: str, stages: list[str] = STAGES, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"stage": stage, "url": url, "timeout": "1m", "onTimeout": "rollback", **extra} for stage in stages
    ]


def _at(story: EngineStory, split: tuple[int, int]) -> list[Any]:
    """The times at which production traffic reached ``split``."""
    return [at for at, seen in story.moves() if seen == split]


# -- each strategy to success ----------------------------------------------------------------------


def test_canary_with_every_hook_rolls_out_to_success(make: Any, receiver: HookReceiver) -> None:
    """Canary 10 % for 5m, then 100 %, then a 10m final bake: every lifecycle hook is called once, in
    order, signed; test traffic reaches green first; the old task set goes only after the final bake."""
    story = make(lambda n: canary(n, hooks=_hooks(receiver.url("smoke"))))
    sha = story.deploy("repo/web:2")
    result = story.run()

    assert story.status(result) == ("success", f"{story.family}:2 serving 100 %")
    assert story.notes(sha)[story.context]["state"] == "success"
    assert story.labels() == [(f"{story.family}:2", "PRIMARY", f"{story.name}-green")]
    assert [split for _, split in story.moves()] == [(100, 0), (90, 10), (0, 100)]
    assert [split for _, split in story.moves("test")] == [(100, 0), (0, 100)]  # on the primary's group
    assert story.moves("test")[1][0] < story.moves()[1][0]  # test traffic before production traffic
    (ten,), (hundred,) = _at(story, (90, 10)), _at(story, (0, 100))
    assert hundred - ten == timedelta(minutes=5)  # the canary bake, to the second
    assert story.times[-1] - hundred >= timedelta(minutes=10)  # the final bake before clean-up

    assert receiver.stages() == STAGES
    for call in receiver.calls():
        assert call.headers[SIGNATURE_HEADER] == signature(SECRET, call.raw)
        assert call.body["service"] == "web" and call.body["cluster"] == story.cluster
        assert call.body["sha"] == sha and call.body["taskDefinition"].endswith(f"{story.family}:2")
    weights = {c.stage: c.body["weights"] for c in receiver.calls()}
    assert weights["preProductionTraffic"] == {story.blue_tg: 100, story.green_tg: 0}
    assert weights["postProductionTraffic"] == {story.blue_tg: 0, story.green_tg: 100}


def test_linear_moves_traffic_step_by_step_without_test_rule(make: Any) -> None:
    """Linear 25 % every 2m: 25, 50, 75, 100, each step held for its bake; no test rule is needed."""
    story = make(linear, test_rule=False)
    story.deploy("repo/web:2")
    result = story.run()

    assert story.status(result) == ("success", f"{story.family}:2 serving 100 %")
    moves = story.moves()
    assert [split for _, split in moves] == [(100, 0), (75, 25), (50, 50), (25, 75), (0, 100)]
    assert [later - earlier for (earlier, _), (later, _) in itertools.pairwise(moves[1:])] == [
        timedelta(minutes=2)
    ] * 3
    assert story.labels() == [(f"{story.family}:2", "PRIMARY", f"{story.name}-green")]


def test_blue_green_sends_test_traffic_then_flips_and_bakes(make: Any) -> None:
    """Blue/green: green at full capacity gets the test rule, then all production traffic at once, and
    blue is removed after the 4m bake; the next rollout goes back the other way (green -> blue)."""
    story = make(blue_green)
    story.deploy("repo/web:2")
    result = story.run()
    assert story.status(result) == ("success", f"{story.family}:2 serving 100 %")
    assert [split for _, split in story.moves()] == [(100, 0), (0, 100)]
    production_moved = story.moves()[1][0]
    assert [split for _, split in story.moves("test")] == [(100, 0), (0, 100)]
    assert story.moves("test")[1][0] < production_moved  # test traffic first
    assert story.times[-1] - production_moved >= timedelta(minutes=4)

    story.deploy("repo/web:3")
    story.run()
    assert [split for _, split in story.moves()][-2:] == [(0, 100), (100, 0)]
    assert story.labels() == [(f"{story.family}:3", "PRIMARY", f"{story.name}-blue")]


# -- alarms during each bake -----------------------------------------------------------------------


BAKES = [
    ("canary", (90, 10), "canary 10 % baking"),
    ("canary", (0, 100), "final bake"),
    ("linear", (75, 25), "linear 25 % baking"),
    ("linear", (25, 75), "linear 75 % baking"),
    ("linear", (0, 100), "final bake"),
    ("blueGreen", (0, 100), "final bake"),
]


@pytest.mark.parametrize(("kind", "split", "baking"), BAKES, ids=[f"{k}-{b}" for k, _, b in BAKES])
def test_alarm_during_a_bake_rolls_back_within_one_tick(
    make: Any, kind: str, split: tuple[int, int], baking: str
) -> None:
    """An alarm that fires during a bake: the very next tick puts all production traffic back on blue,
    the failure status names the alarm, green is removed, and the same content is not tried again."""
    story = make(STRATEGIES[kind])
    sha = story.deploy("repo/web:2")
    story.run(until=lambda r: baking in story.status(r)[1] and story.split() == split)
    story.advance(30)
    story.sandbox.set_alarm(f"{story.name}-5xx", "ALARM", reason="5xx above 1 %")

    result = story.tick()
    reason = f"rolled back: alarm {story.name}-5xx in ALARM"
    assert story.status(result) == ("failure", reason)
    assert story.split() == (100, 0)  # within one tick
    story.run()
    assert story.labels() == [(f"{story.family}:1", "PRIMARY", f"{story.name}-blue")]
    assert story.notes(sha)[story.context] | {"updatedAt": None} == {
        "state": "failure",
        "description": reason,
        "targetUrl": None,
        "updatedAt": None,
    }

    story.sandbox.set_alarm(f"{story.name}-5xx", "OK")
    story.aws.counter.reset()
    story.advance(120)
    assert story.status(story.tick()) == ("failure", reason)  # not retried
    assert story.mutating_calls() == {}


# -- hooks ---------------------------------------------------------------------------------------------


def test_failed_http_hook_rolls_back_before_production_traffic(make: Any, receiver: HookReceiver) -> None:
    """A postTestTraffic hook that answers FAILED rolls back: green removed, production never moved,
    the failure status carries the hook's reason."""
    receiver.answer("postTestTraffic", "FAILED", reason="smoke: 3 of 20 requests failed")
    story = make(lambda n: canary(n, hooks=_hooks(receiver.url(), ["postScaleUp", "postTestTraffic"])))
    sha = story.deploy("repo/web:2")
    result = story.run()
    reason = "hook postTestTraffic failed: smoke: 3 of 20 requests failed"
    assert story.status(result) == ("failure", reason)
    assert story.notes(sha)[story.context]["description"] == reason
    assert {split for _, split in story.moves()} == {(100, 0)}
    assert story.labels() == [(f"{story.family}:1", "PRIMARY", f"{story.name}-blue")]
    assert receiver.stages() == ["postScaleUp", "postTestTraffic"]


def test_hook_in_progress_past_its_timeout_rolls_back(make: Any, receiver: HookReceiver) -> None:
    """A hook that keeps answering IN_PROGRESS is asked again until its 1m timeout, then onTimeout
    rollback applies, with production traffic moved back."""
    receiver.answer("postProductionTraffic", "IN_PROGRESS")
    story = make(lambda n: canary(n, hooks=_hooks(receiver.url(), ["postProductionTraffic"])))
    story.deploy("repo/web:2")
    result = story.run()
    assert story.status(result) == ("failure", "hook postProductionTraffic timed out after 1m")
    assert [split for _, split in story.moves()] == [(100, 0), (90, 10), (0, 100), (100, 0)]
    calls = receiver.calls("postProductionTraffic")
    assert len(calls) >= 2  # asked again while in progress
    assert story.labels() == [(f"{story.family}:1", "PRIMARY", f"{story.name}-blue")]


def test_lambda_hook_function_error_rolls_back_and_success_continues(make: Any) -> None:
    """A Lambda hook that raises (FunctionError) rolls back; the next content, with the function
    answering SUCCEEDED, rolls out; each invoke got the rollout's JSON as its event."""
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:{}-smoke"
    story = make(lambda n: canary(n, hooks=[{"stage": "preProductionTraffic", "lambda": arn.format(n)}]))
    function = arn.format(story.name)
    story.sandbox.set_lambda_result(function, function_error="Unhandled", reason="KeyError: 'url'")
    story.deploy("repo/web:2")
    result = story.run()
    state, description = story.status(result)
    assert state == "failure" and description.startswith("hook preProductionTraffic failed:")
    assert "KeyError" in description

    story.sandbox.set_lambda_result(function, "SUCCEEDED")
    sha = story.deploy("repo/web:3")
    assert story.status(story.run()) == ("success", f"{story.family}:3 serving 100 %")
    events = [call["payload"] for call in story.sandbox.lambda_calls(function)]
    assert [e["stage"] for e in events] == ["preProductionTraffic", "preProductionTraffic"]
    assert events[-1]["sha"] == sha and events[-1]["service"] == "web"


# -- supersede -----------------------------------------------------------------------------------------


def test_revert_during_canary_is_an_instant_rollback(make: Any) -> None:
    """`git revert` of a commit in its canary bake: the next tick puts traffic back on blue and removes
    green; the revert commit succeeds "rolled back to <family>:1", the reverted one fails "superseded
    by <sha12> before it finished", and no revision is registered for the revert."""
    story = make(canary)
    bump = story.deploy("repo/web:2")
    story.run(until=lambda r: "canary 10 % baking" in story.status(r)[1])
    story.advance(60)
    undo = story.revert(bump)

    result = story.tick()
    assert story.split() == (100, 0)
    assert story.status(result) == ("success", f"rolled back to {story.family}:1")
    story.run()
    assert story.labels() == [(f"{story.family}:1", "PRIMARY", f"{story.name}-blue")]
    assert story.notes(undo)[story.context]["description"] == f"rolled back to {story.family}:1"
    superseded = story.notes(bump)[story.context]
    assert (superseded["state"], superseded["description"]) == (
        "failure",
        f"superseded by {undo[:12]} before it finished",
    )
    assert story.revisions(story.family) == [f"{story.family}:1", f"{story.family}:2"]


def test_new_content_during_a_rollout_aborts_it_then_rolls_out(make: Any) -> None:
    """A new image while linear is at 50 %: the old green is aborted (traffic back on blue first), the
    newest content rolls out from blue, and there are never three task sets."""
    story = make(linear)
    first = story.deploy("repo/web:2")
    story.run(until=lambda r: story.split() == (50, 50))
    second = story.deploy("repo/web:3")
    result = story.tick()
    assert story.split() == (100, 0)
    assert story.status(result)[0] == "pending"
    counts: list[int] = []
    result = story.run(until=lambda r: counts.append(len(story.task_sets())) or r.wake_at is None)
    assert story.status(result) == ("success", f"{story.family}:3 serving 100 %")
    assert max(counts) <= 2
    assert story.labels() == [(f"{story.family}:3", "PRIMARY", f"{story.name}-green")]
    assert (
        story.notes(first)[story.context]["description"] == f"superseded by {second[:12]} before it finished"
    )
    assert story.notes(second)[story.context]["state"] == "success"


def test_statuses_are_readable_json_in_git_notes(make: Any) -> None:
    """The pending statuses a rollout writes name the phase (visible with git notes while it runs)."""
    story = make(canary)
    sha = story.deploy("repo/web:2")
    seen: list[str] = []
    story.run(
        until=lambda r: seen.append(story.notes(sha)[story.context]["description"]) or r.wake_at is None
    )
    assert f"creating {story.family}:2 task set" in seen
    assert "canary 10 %: shifting traffic to " + f"{story.family}:2" in seen
    assert any(d.startswith("canary 10 % baking, ") for d in seen)
    assert json.dumps(story.notes(sha))  # plain JSON, as `git notes --ref ecs-gitops show` prints
