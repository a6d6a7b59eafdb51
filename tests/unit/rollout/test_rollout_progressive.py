"""The agent engine as transition tables: every tick's (actions, status) from a pure model of ECS + ELB.

``agent_world.World`` carries the decisions out and asserts the invariants after every action:
weights sum to 100, no weight on a target group without a stable task set, never three task sets.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from agent_world import PROD, T0, TEST, TG_A, TG_B, Commit, World, td

from agent.rollout.decisions import FAILURE, PENDING, SUCCESS, Decision, RolloutRecord
from agent.rollout.progressive import (
    POLL,
    AgentRecord,
    CreateTaskSet,
    DeleteTaskSet,
    Hook,
    HookState,
    Register,
    RunHook,
    SetPrimary,
    SetWeights,
    Strategy,
    UpdateService,
    advance,
    hand_back,
)
from agent.rollout.windows import Window

ALARM = {"rollbackOn": {"alarms": ["arn:aws:cloudwatch:eu-west-1:111122223333:alarm:web-5xx"]}}
CANARY = Strategy.from_spec(
    {"type": "canary", "canary": {"percent": 10, "bake": "5m"}, "bake": "10m", **ALARM}
)
LINEAR = Strategy.from_spec(
    {"type": "linear", "linear": {"stepPercent": 25, "stepBake": "2m"}, "bake": "5m", **ALARM}
)
BLUE_GREEN = Strategy.from_spec({"type": "blueGreen", "bake": "3m", **ALARM})
STAGES = (
    "preScaleUp",
    "postScaleUp",
    "testTraffic",
    "postTestTraffic",
    "preProductionTraffic",
    "postProductionTraffic",
)
ALL_HOOKS = Strategy.from_spec(
    {
        "type": "blueGreen",
        "bake": "1m",
        "hooks": [{"stage": s, "url": "https://hooks.example/x"} for s in STAGES],
    }
)
BACK_PROD = SetWeights(PROD, ((TG_A, 100), (TG_B, 0)))
BACK_TEST = SetWeights(TEST, ((TG_A, 100), (TG_B, 0)))


def names(world: World) -> list[tuple[tuple[str, ...], str, str]]:
    return list(world.log)


def assert_done(world: World, revision: int = 5) -> None:
    """One task set left: the target, PRIMARY, on tg-b, with all production (and test) traffic."""
    assert [(t.task_definition, t.status, t.target_group) for t in world.task_sets] == [
        (td(revision), "PRIMARY", TG_B)
    ]
    assert world.prod == {TG_A: 0, TG_B: 100}
    if world.test is not None:
        assert world.test == {TG_A: 0, TG_B: 100}
    assert world.record is not None and world.record.result == "succeeded"


def assert_rolled_back(world: World) -> None:
    """Blue web:4 is PRIMARY with all traffic; green is draining or gone."""
    live = [t for t in world.task_sets if t.status != "DRAINING"]
    assert [(t.task_definition, t.status, t.target_group) for t in live] == [(td(4), "PRIMARY", TG_A)]
    assert world.prod == {TG_A: 100, TG_B: 0}
    if world.test is not None:
        assert world.test == {TG_A: 100, TG_B: 0}


# -- each strategy to success, tick by tick --------------------------------------------------------


def test_canary_to_success() -> None:
    """Canary: register, create, wait, test traffic, hook, 10 %, bake, 100 %, flip, final bake, clean up."""
    strategy = replace(CANARY, hooks=(Hook("postTestTraffic", "https://hooks.example/smoke", None),))
    world = World(strategy, test_rule=True)
    world.run()
    assert names(world) == [
        (("Register",), PENDING, "registering web:(new)"),
        (("CreateTaskSet",), PENDING, "creating web:5 task set"),
        ((), PENDING, "waiting for web:5 task set: 2/4 running"),
        (("SetWeights",), PENDING, "test traffic to web:5"),
        (("RunHook",), PENDING, "hook postTestTraffic running for web:5"),
        (("SetWeights",), PENDING, "canary 10 %: shifting traffic to web:5"),
        ((), PENDING, "canary 10 % baking, 5m left"),
        (("SetWeights",), PENDING, "canary 100 %: shifting traffic to web:5"),
        (("SetPrimary",), PENDING, "web:5 serving 100 %, now primary"),
        ((), PENDING, "web:5 serving 100 %, final bake 10m left"),
        (("DeleteTaskSet",), SUCCESS, "web:5 serving 100 %"),
        ((), SUCCESS, "web:5 serving 100 %"),
    ]
    assert world.hook_calls == [("postTestTraffic", ((TG_A, 100), (TG_B, 0)))]
    assert_done(world)


def test_linear_to_success() -> None:
    """Linear 25 %: four steps, each but the last baked 2m, then the flip and a 5m final bake."""
    world = World(LINEAR)
    start = world.now
    world.run()
    steps = [entry for entry in names(world) if entry[0] == ("SetWeights",)]
    assert [s[2] for s in steps] == [f"linear {w} %: shifting traffic to web:5" for w in (25, 50, 75, 100)]
    assert [e[2] for e in names(world) if "baking" in e[2]] == [
        f"linear {w} % baking, 2m left" for w in (25, 50, 75)
    ]
    assert ((), PENDING, "web:5 serving 100 %, final bake 5m left") in names(world)
    assert_done(world)
    assert world.now - start >= timedelta(minutes=3 * 2 + 5)  # the bakes were waited for, not skipped


def test_blue_green_with_every_hook_to_success() -> None:
    """Blue/green: every configured hook runs once at its stage, in order, with the weights of that moment."""
    world = World(ALL_HOOKS, test_rule=True)
    world.run()
    assert [c[0] for c in world.hook_calls] == list(STAGES)
    assert world.hook_calls[-1][1] == ((TG_A, 0), (TG_B, 100))
    assert all(w == ((TG_A, 100), (TG_B, 0)) for _, w in world.hook_calls[:-1])
    actions = [a for entry in names(world) for a in entry[0]]
    assert actions.index("CreateTaskSet") > 0 and world.hook_calls[0][0] == "preScaleUp"
    assert_done(world)


def test_blue_green_without_hooks_is_one_step() -> None:
    """Blue/green moves production from 0 to 100 % in one SetWeights; no test rule, no test weights."""
    world = World(BLUE_GREEN)
    world.run()
    assert [e[2] for e in names(world) if e[0] == ("SetWeights",)] == [
        "blue/green 100 %: shifting traffic to web:5"
    ]
    assert_done(world)


# -- alarms during each bake -> one rollback decision ----------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "until"),
    [
        (CANARY, "canary 10 % baking"),
        (LINEAR, "linear 25 % baking"),
        (LINEAR, "linear 50 % baking"),
        (LINEAR, "linear 75 % baking"),
    ],
    ids=["canary bake", "linear step 1 bake", "linear step 2 bake", "linear step 3 bake"],
)
def test_alarm_during_a_step_bake_rolls_back_in_one_decision(strategy: Strategy, until: str) -> None:
    """An alarm in ALARM during a step bake puts all traffic back on blue and deletes green, in one tick."""
    world = World(strategy, test_rule=True)
    world.run_until(until)
    green = world.by_revision(5)
    world.alarms["web-5xx"] = "ALARM"
    world.now += timedelta(seconds=30)
    decision = world.tick()
    assert decision.actions == (BACK_PROD, BACK_TEST, DeleteTaskSet(green.arn))
    assert (decision.state, decision.description) == (FAILURE, "rolled back: alarm web-5xx in ALARM")
    assert decision.record.result == "failed"
    assert_rolled_back(world)
    world.settle(world.now + POLL)
    world.alarms["web-5xx"] = "OK"
    again = world.tick()
    assert (again.actions, again.state, again.description) == (
        (),
        FAILURE,
        "rolled back: alarm web-5xx in ALARM",
    )


def test_alarm_during_the_final_bake_makes_blue_primary_again() -> None:
    """During the final bake green is primary: the rollback also makes blue primary, in the same decision."""
    world = World(CANARY, test_rule=True)
    world.run_until("final bake")
    blue, green = world.by_revision(4), world.by_revision(5)
    world.alarms["web-5xx"] = "ALARM"
    decision = world.tick()
    assert decision.actions == (BACK_PROD, BACK_TEST, SetPrimary(blue.arn), DeleteTaskSet(green.arn))
    assert (decision.state, decision.description) == (FAILURE, "rolled back: alarm web-5xx in ALARM")
    assert_rolled_back(world)


def test_alarm_before_any_traffic_is_not_greens_fault() -> None:
    """An alarm already firing before green has traffic does not roll back: it is blue's alarm."""
    world = World(CANARY)
    world.alarms["web-5xx"] = "ALARM"
    decision = world.run_until("shifting traffic")
    assert decision.actions == (SetWeights(PROD, ((TG_A, 90), (TG_B, 10))),)


# -- hooks -----------------------------------------------------------------------------------------


def test_failed_hook_rolls_back() -> None:
    """A hook answering FAILED rolls back with its reason; test traffic goes back to blue too."""
    strategy = replace(CANARY, hooks=(Hook("postTestTraffic", "https://hooks.example/smoke", None),))
    world = World(strategy, test_rule=True, answers={"postTestTraffic": [("FAILED", "smoke test: HTTP 500")]})
    world.run_until("hook postTestTraffic running")
    world.settle(world.now + POLL)
    green = world.by_revision(5)
    decision = world.tick()
    assert decision.actions == (BACK_TEST, DeleteTaskSet(green.arn))
    assert (decision.state, decision.description) == (
        FAILURE,
        "hook postTestTraffic failed: smoke test: HTTP 500",
    )
    assert_rolled_back(world)


def test_failed_pre_scale_up_hook_creates_nothing() -> None:
    """A preScaleUp hook that fails stops the rollout before any task set exists."""
    strategy = replace(
        BLUE_GREEN, hooks=(Hook("preScaleUp", None, "arn:aws:lambda:eu-west-1:1:function:gate"),)
    )
    world = World(strategy, answers={"preScaleUp": [("FAILED", "change freeze ticket open")]})
    final = world.run()
    assert (final.state, final.description) == (FAILURE, "hook preScaleUp failed: change freeze ticket open")
    assert "CreateTaskSet" not in [a for entry in names(world) for a in entry[0]]


def in_progress_world(on_timeout: str) -> World:
    hook = Hook("preProductionTraffic", "https://hooks.example/slow", None, timedelta(minutes=2), on_timeout)
    return World(replace(CANARY, hooks=(hook,)), answers={"preProductionTraffic": [("IN_PROGRESS", "")]})


def test_in_progress_hook_is_called_again_every_5s() -> None:
    """IN_PROGRESS: no call before 5 s have passed, then the hook is called again; nothing else moves."""
    world = in_progress_world("rollback")
    world.run_until("hook preProductionTraffic running")
    world.now += timedelta(seconds=2)
    waiting = world.tick()
    assert (
        waiting.actions == () and waiting.wake_at == world.hooks["preProductionTraffic"].last_called_at + POLL
    )
    assert waiting.description == "hook preProductionTraffic in progress for web:5, times out in 2m"
    world.now = waiting.wake_at
    again = world.tick()
    assert again.actions == (RunHook("preProductionTraffic", ((TG_A, 100), (TG_B, 0))),)


@pytest.mark.parametrize(
    ("on_timeout", "state", "text"),
    [
        ("rollback", FAILURE, "hook preProductionTraffic timed out after 2m"),
        ("continue", SUCCESS, "web:5 serving 100 %"),
    ],
)
def test_hook_timeout(on_timeout: str, state: str, text: str) -> None:
    """A hook still IN_PROGRESS at its timeout rolls back or lets the rollout continue, as configured."""
    world = in_progress_world(on_timeout)
    final = world.run()
    assert (final.state, final.description) == (state, text)
    calls = [c for c in world.hook_calls if c[0] == "preProductionTraffic"]
    assert len(calls) >= 2  # polled while in progress
    if on_timeout == "rollback":
        assert_rolled_back(world)
        assert world.prod == {TG_A: 100, TG_B: 0}
    else:
        assert_done(world)


def test_stale_hook_answers_from_an_earlier_rollout_are_ignored() -> None:
    """A SUCCEEDED answer for the same content from before this rollout started does not count."""
    world = World(replace(BLUE_GREEN, hooks=(Hook("preScaleUp", "https://hooks.example/x", None),)))
    old = T0 - timedelta(days=3)
    world.hooks["preScaleUp"] = HookState("preScaleUp", "SUCCEEDED", old, old)
    world.registered.add(5)
    world.record = AgentRecord("b" * 40, "F1", "succeeded", (T0 - timedelta(days=1)).isoformat())
    decision = world.tick()
    assert decision.actions == (RunHook("preScaleUp", ((TG_A, 100), (TG_B, 0))),)


# -- windows ---------------------------------------------------------------------------------------

NIGHTS = Window.from_spec(
    "weekday-nights",
    {"type": "maintenance", "schedule": "0 22 * * 1-5", "duration": "6h", "timezone": "Europe/Berlin"},
)
# T0 is Tuesday 2026-11-24 12:00 UTC (13:00 in Berlin): the window opens at 21:00 UTC.
OPENS = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def test_closed_maintenance_window_moves_no_traffic_until_it_opens() -> None:
    """Green is prepared while the window is closed, but production weights wait for the opening."""
    world = World(CANARY, test_rule=True, windows=(NIGHTS,))
    waiting = world.run_until("ready: waiting")
    assert (
        waiting.description
        == "web:5 ready: waiting for maintenance window weekday-nights, opens 22:00 Europe/Berlin"
    )
    assert waiting.actions == () and waiting.wake_at == OPENS
    assert world.prod == {TG_A: 100, TG_B: 0} and world.test == {
        TG_A: 0,
        TG_B: 100,
    }  # test traffic is not gated
    world.now = OPENS - timedelta(minutes=1)
    assert world.tick().actions == ()
    world.now = OPENS
    assert world.tick().actions == (SetWeights(PROD, ((TG_A, 90), (TG_B, 10))),)


def test_closed_window_runs_the_pre_traffic_hook_only_once_open() -> None:
    """preProductionTraffic runs when the window has opened, right before traffic moves."""
    strategy = replace(CANARY, hooks=(Hook("preProductionTraffic", "https://hooks.example/x", None),))
    world = World(strategy, windows=(NIGHTS,))
    world.run_until("ready: waiting")
    assert world.hook_calls == []
    world.now = OPENS
    assert world.tick().actions == (RunHook("preProductionTraffic", ((TG_A, 100), (TG_B, 0))),)


YEAR_END = Window.from_spec(
    "year-end-freeze", {"type": "freeze", "schedule": "0 0 20 12 *", "duration": "336h", "timezone": "UTC"}
)


def test_freeze_takes_no_action_at_all() -> None:
    """While a freeze window is open a new rollout does nothing at all, not even registering."""
    world = World(CANARY, windows=(YEAR_END,), now=datetime(2026, 12, 24, 10, 0, tzinfo=UTC), in_sync=False)
    for _ in range(3):
        decision = world.tick()
        assert decision.actions == ()
        assert (decision.state, decision.description) == (
            PENDING,
            "frozen by year-end-freeze until 2027-01-03 00:00 UTC",
        )
        assert decision.wake_at == datetime(2027, 1, 3, tzinfo=UTC)
        world.settle(world.now + timedelta(hours=12))
    world.now = datetime(2027, 1, 3, tzinfo=UTC)
    assert world.tick().actions == (UpdateService(), Register())


def window_closing_mid_canary(overrun: str) -> tuple[World, datetime]:
    """A canary at 10 % whose maintenance window closes during the bake (window 22:00 for 3 minutes)."""
    short = Window.from_spec(
        "short",
        {"type": "maintenance", "schedule": "0 21 * * *", "duration": "3m", "overrun": overrun},
    )
    world = World(CANARY, windows=(short,), now=datetime(2026, 11, 24, 21, 0, tzinfo=UTC))
    world.run_until("canary 10 % baking")
    return world, datetime(2026, 11, 24, 21, 3, tzinfo=UTC)


def test_overrun_finish_carries_on_after_the_window_closed() -> None:
    """overrun finish: a rollout half-way when the window closes goes on to 100 % and finishes."""
    world, closed = window_closing_mid_canary("finish")
    assert world.now < closed
    moved = world.run_until("canary 100 %: shifting traffic")
    assert world.now > closed and moved.actions == (SetWeights(PROD, ((TG_A, 0), (TG_B, 100))),)
    assert world.run().state == SUCCESS
    assert_done(world)


def test_overrun_pause_holds_the_weights_until_the_next_opening() -> None:
    """overrun pause: after the bake the weights stay at 10 % until the window opens again."""
    world, _ = window_closing_mid_canary("pause")
    world.now = datetime(2026, 11, 24, 21, 10, tzinfo=UTC)
    held = world.tick()
    assert held.actions == ()
    assert held.description == "canary 10 %: waiting for maintenance window short, opens Wed 21:00 UTC"
    assert held.wake_at == datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    assert world.prod == {TG_A: 90, TG_B: 10}
    world.alarms["web-5xx"] = "ALARM"  # alarms are still checked while paused
    assert world.decide().description == "rolled back: alarm web-5xx in ALARM"
    world.alarms.clear()
    world.now = held.wake_at
    assert world.tick().actions == (SetWeights(PROD, ((TG_A, 0), (TG_B, 100))),)


def test_overrun_rollback_rolls_back_when_the_window_closes() -> None:
    """overrun rollback: the tick after the window closed rolls back with a failure naming the window."""
    world, closed = window_closing_mid_canary("rollback")
    world.now = closed
    green = world.by_revision(5)
    decision = world.tick()
    assert decision.actions == (BACK_PROD, DeleteTaskSet(green.arn))
    assert (decision.state, decision.description) == (
        FAILURE,
        "rolled back: maintenance window short closed mid-rollout",
    )
    assert_rolled_back(world)


@pytest.mark.parametrize(
    ("overrun", "actions", "text"),
    [
        ("rollback", "rollback", "rolled back: freeze window year-end-freeze opened mid-rollout"),
        ("pause", "none", "canary 10 %: frozen by year-end-freeze until 2027-01-03 00:00 UTC"),
        ("finish", "step", "canary 100 %: shifting traffic to web:5"),
    ],
)
def test_freeze_opening_mid_rollout_follows_its_overrun(overrun: str, actions: str, text: str) -> None:
    """A freeze that opens while traffic is half-way follows the freeze window's overrun."""
    freeze = replace(YEAR_END, overrun=overrun)
    world = World(CANARY, windows=(freeze,), now=datetime(2026, 12, 19, 23, 50, tzinfo=UTC))
    world.run_until("canary 10 % baking")
    world.now = datetime(2026, 12, 20, 0, 0, tzinfo=UTC) + timedelta(minutes=6)
    green = world.by_revision(5)
    decision = world.tick()
    assert decision.description == text
    expected = {
        "rollback": (BACK_PROD, DeleteTaskSet(green.arn)),
        "none": (),
        "step": (SetWeights(PROD, ((TG_A, 0), (TG_B, 100))),),
    }[actions]
    assert decision.actions == expected


# -- supersede -------------------------------------------------------------------------------------


def test_revert_during_a_canary_is_an_instant_rollback() -> None:
    """A commit back to blue's revision rolls back at once: success on it, failure on the superseded one."""
    world = World(CANARY, test_rule=True)
    world.run_until("canary 10 % baking")
    green = world.by_revision(5)
    superseded = world.commit.sha
    world.commit = Commit("c" * 40, "F1", 4)
    decision = world.tick()
    assert decision.actions == (BACK_PROD, BACK_TEST, DeleteTaskSet(green.arn))
    assert (decision.state, decision.description) == (SUCCESS, "rolled back to web:4")
    assert decision.other_commits == ((superseded, FAILURE, "superseded by cccccccccccc before it finished"),)
    assert_rolled_back(world)
    world.settle(world.now + POLL)
    after = world.tick()
    assert (after.actions, after.state, after.description, after.other_commits) == (
        (),
        SUCCESS,
        "rolled back to web:4",
        (),
    )


def test_revert_during_the_final_bake_makes_blue_primary_again() -> None:
    """A revert after the flip puts blue back as primary with all traffic, in one decision."""
    world = World(CANARY, test_rule=True)
    world.run_until("final bake")
    blue, green = world.by_revision(4), world.by_revision(5)
    world.commit = Commit("c" * 40, "F1", 4)
    decision = world.tick()
    assert decision.actions == (BACK_PROD, BACK_TEST, SetPrimary(blue.arn), DeleteTaskSet(green.arn))
    assert (decision.state, decision.description) == (SUCCESS, "rolled back to web:4")
    assert decision.other_commits[0][1:] == (FAILURE, "superseded by cccccccccccc before it finished")
    assert_rolled_back(world)


def test_newer_commit_mid_rollout_aborts_then_rolls_out_from_blue() -> None:
    """A newer commit with other content aborts the rollout in flight, then rolls out from blue."""
    world = World(CANARY)
    world.run_until("canary 10 % baking")
    green = world.by_revision(5)
    world.commit = Commit("d" * 40, "F3", 6)
    world.registered.add(6)
    abort = world.tick()
    assert abort.actions == (BACK_PROD, DeleteTaskSet(green.arn))
    assert (abort.state, abort.description) == (PENDING, "aborting web:5: traffic back on web:4, then web:6")
    assert abort.other_commits == (("a" * 40, FAILURE, "superseded by dddddddddddd before it finished"),)
    assert world.prod == {TG_A: 100, TG_B: 0}
    final = world.run()  # World.check asserts there are never three task sets on the way
    assert (final.state, final.description) == (SUCCESS, "web:6 serving 100 %")
    assert_done(world, revision=6)
    assert [e for e in names(world) if e[0] == ("CreateTaskSet",)] == [
        (("CreateTaskSet",), PENDING, "creating web:5 task set"),
        (("CreateTaskSet",), PENDING, "creating web:6 task set"),
    ]


def test_abort_waits_for_the_old_green_to_drain_before_creating() -> None:
    """While the superseded task set is still draining the new one is not created (never three task sets)."""
    world = World(CANARY)
    world.run_until("canary 10 % baking")
    world.commit = Commit("d" * 40, "F3", 6)
    world.registered.add(6)
    world.tick()
    decision = world.tick()  # no settle: the old green is still DRAINING
    assert decision.actions == ()
    assert decision.description == "waiting for web:5 task set to drain"


def test_same_revision_other_settings_keeps_the_task_set_in_flight() -> None:
    """A commit that changes only service settings (same task definition) carries the rollout on."""
    world = World(CANARY)
    world.run_until("canary 10 % baking")
    world.commit = Commit("e" * 40, "F2b", 5)
    world.in_sync = False
    decision = world.tick()
    assert decision.actions == (UpdateService(),)
    assert decision.description.startswith("canary 10 % baking")
    assert decision.other_commits == (("a" * 40, FAILURE, "superseded by eeeeeeeeeeee before it finished"),)
    assert world.run().state == SUCCESS
    assert_done(world)


# -- handing the service back to ECS (Git moved it to another engine) ---------------------------------


def _hand_back(world: World, sha: str = "f" * 40) -> Decision:
    """Tick once with hand_back for a commit that switches web to engine ecs (CANARY)."""
    obs = replace(world.observation(), sha=sha, fingerprint="F-ecs", target=None, target_label="web")
    decision = hand_back(world.record, obs, "CANARY", world.now)
    world.apply(decision)
    return decision


def test_hand_back_mid_canary_puts_traffic_on_blue_and_deletes_green() -> None:
    """Switching engine while the canary bakes: traffic back on blue and green deleted in one decision, the
    canary's commit fails as superseded, and nothing else happens once blue is the only task set."""
    world = World(CANARY, test_rule=True)
    world.run_until("canary 10 % baking")
    green = world.by_revision(5)
    decision = _hand_back(world)
    assert decision.actions == (BACK_PROD, BACK_TEST, DeleteTaskSet(green.arn))
    assert (decision.state, decision.description) == (
        PENDING,
        "switching from engine agent to CANARY: traffic back on web:4, removing web:5",
    )
    assert decision.other_commits == (("a" * 40, FAILURE, "superseded by ffffffffffff before it finished"),)
    assert world.record is not None and (world.record.result, world.record.sha) == ("failed", "a" * 40)
    assert_rolled_back(world)
    world.settle(world.now + POLL)
    again = _hand_back(world)  # (the reconciler would not ask again: one PRIMARY task set is left)
    assert again.actions == () and again.other_commits == ()


def test_hand_back_during_the_final_bake_makes_the_old_blue_primary_again() -> None:
    """After the flip, handing back keeps the rollout's blue (as a superseding commit would)."""
    world = World(CANARY)
    world.run_until("final bake")
    blue, green = world.by_revision(4), world.by_revision(5)
    decision = _hand_back(world)
    assert decision.actions == (BACK_PROD, SetPrimary(blue.arn), DeleteTaskSet(green.arn))
    assert_rolled_back(world)


def test_hand_back_without_a_rollout_in_flight_only_removes_strays() -> None:
    """A stray task set next to a finished rollout is deleted, and no commit is said to be superseded."""
    world = World(CANARY)
    world.run()
    world.task_sets.append(world._task_set(3, TG_A, "ACTIVE", stable=True))
    stray = world.by_revision(3)
    decision = _hand_back(world)
    assert decision.actions == (DeleteTaskSet(stray.arn),)
    assert decision.other_commits == () and world.record is not None and world.record.result == "succeeded"


def test_hand_back_with_no_task_set_fails_and_says_why() -> None:
    """An EXTERNAL service without any task set cannot switch in place: failure, nothing done."""
    world = World(CANARY)
    world.task_sets = []
    decision = _hand_back(world)
    assert (decision.actions, decision.state) == ((), FAILURE)
    assert "has none: re-create it" in decision.description


# -- crash and resume ------------------------------------------------------------------------------


def test_resume_with_green_already_created_does_not_create_another() -> None:
    """A green task set that already exists (crash after CreateTaskSet) is used, not created again."""
    world = World(CANARY)
    world.registered.add(5)
    world._do(CreateTaskSet(td(5), TG_B, world.commit.sha))
    world.settle(world.now + timedelta(minutes=1))
    world.settle(world.now + timedelta(minutes=1))
    decision = world.tick()  # no record at all
    assert decision.actions == (SetWeights(PROD, ((TG_A, 90), (TG_B, 10))),)
    world.run()
    assert [e for e in names(world) if "CreateTaskSet" in e[0]] == []
    assert_done(world)


def test_resume_with_weights_already_at_step_one_without_a_record() -> None:
    """Weights already at the canary step mean the step is done: its bake starts now, nothing is moved."""
    world = World(CANARY)
    world.registered.add(5)
    world._do(CreateTaskSet(td(5), TG_B, world.commit.sha))
    world.settle(world.now + timedelta(minutes=1))
    world.settle(world.now + timedelta(minutes=1))
    world.prod = {TG_A: 90, TG_B: 10}
    decision = world.tick()
    assert decision.actions == ()
    assert (decision.state, decision.description) == (PENDING, "canary 10 % baking, 5m left")
    assert decision.record.step_weight == 10 and decision.record.step_since == world.now.isoformat()
    assert decision.wake_at == world.now + timedelta(minutes=5)


def test_resume_after_the_flip_without_a_record_bakes_before_deleting_blue() -> None:
    """Green already primary and blue still there, with no record: the final bake runs before blue goes."""
    world = World(CANARY)
    world.run_until("now primary")
    world.settle(world.now + POLL)
    world.record = None
    decision = world.tick()
    assert decision.actions == ()
    assert decision.description == "web:5 serving 100 %, final bake 10m left"


def test_crash_in_the_middle_of_a_rollback_is_finished_next_tick() -> None:
    """A failed record with green still taking traffic (rollback cut short) finishes the rollback."""
    world = World(CANARY)
    world.run_until("canary 10 % baking")
    green = world.by_revision(5)
    world.record = replace(world.record, result="failed", reason="rolled back: alarm web-5xx in ALARM")
    decision = world.tick()
    assert decision.actions == (BACK_PROD, DeleteTaskSet(green.arn))
    assert (decision.state, decision.description) == (FAILURE, "rolled back: alarm web-5xx in ALARM")


def test_stray_task_set_is_deleted_with_weight_zero_first() -> None:
    """A task set that is neither blue nor the target loses its weight before it is deleted."""
    world = World(CANARY)
    world.registered.update({5, 9})
    world._do(CreateTaskSet(td(9), TG_B, "f" * 40))
    world.settle(world.now + timedelta(minutes=1))
    world.settle(world.now + timedelta(minutes=1))
    world.prod = {TG_A: 70, TG_B: 30}
    stray = world.by_revision(9)
    decision = world.tick()
    assert decision.actions == (BACK_PROD, DeleteTaskSet(stray.arn))
    assert decision.other_commits == ()  # no rollout of ours was in flight


def test_green_losing_stability_with_traffic_rolls_back() -> None:
    """Weight never stays on an unstable task set: green failing under canary traffic rolls back."""
    world = World(CANARY)
    world.run_until("canary 10 % baking")
    green = world.by_revision(5)
    world.task_sets = [
        replace(t, running=2, stable=False) if t.arn == green.arn else t for t in world.task_sets
    ]
    decision = world.decide()
    assert decision.actions == (BACK_PROD, DeleteTaskSet(green.arn))
    assert decision.description == "rolled back: web:5 task set unstable with traffic: 2/4 running"


def test_green_that_never_starts_rolls_back_after_the_timeout() -> None:
    """A task set whose tasks never start is given up after 15 minutes, before any traffic moved."""
    world = World(CANARY, broken={5})
    final = world.run()
    assert (final.state, final.description) == (
        FAILURE,
        "rolled back: web:5 task set not stable after 15m: 0/4 running",
    )
    assert world.prod == {TG_A: 100, TG_B: 0}


# -- steady state, failure memory, bootstrap -------------------------------------------------------


def test_steady_state_does_nothing() -> None:
    """The target is primary and alone with all traffic: success, no action, no wake-up."""
    world = World(CANARY, commit=Commit("a" * 40, "F1", 4))
    decision = world.tick()
    assert (decision.actions, decision.state, decision.description, decision.wake_at) == (
        (),
        SUCCESS,
        "web:4 serving 100 %",
        None,
    )


def test_service_settings_only_update_the_service() -> None:
    """Same task definition, other service settings: one UpdateService, then success."""
    world = World(CANARY, commit=Commit("a" * 40, "F1b", 4), in_sync=False)
    first = world.tick()
    assert (first.actions, first.state) == ((UpdateService(),), PENDING)
    assert world.tick().state == SUCCESS


def test_failed_content_is_not_retried() -> None:
    """After a rollback the same fingerprint only repeats its failure; new content rolls out again."""
    world = World(CANARY)
    world.run_until("canary 10 % baking")
    world.alarms["web-5xx"] = "ALARM"
    world.tick()
    world.alarms.clear()
    for _ in range(3):
        world.settle(world.now + timedelta(minutes=10))
        assert world.tick().actions == ()
    world.commit = Commit("f" * 40, "F4", 6)
    assert world.tick().actions == (Register(),)


def test_bootstrap_without_a_primary_task_set() -> None:
    """A service with no task set yet gets the target's task set, all traffic, and makes it primary."""
    world = World(CANARY)
    world.task_sets = []  # a new service: the rule already forwards to tg-a, which has no targets yet
    world.registered.add(5)
    first = world.tick()
    assert first.actions == (CreateTaskSet(td(5), TG_A, world.commit.sha),)
    final = world.run()
    assert final.state == SUCCESS
    assert [(t.task_definition, t.status) for t in world.task_sets] == [(td(5), "PRIMARY")]


# -- the record and the strategy -------------------------------------------------------------------


def test_record_round_trips_and_reads_a_rolling_record() -> None:
    """AgentRecord survives JSON; a RolloutRecord reads as a finished rollout; unknown keys are dropped."""
    record = AgentRecord(
        "a" * 40, "F2", "in_progress", T0.isoformat(), td(5), step_weight=10, step_phase="step"
    )
    assert AgentRecord.from_json(record.to_json()) == record
    rolling = RolloutRecord("b" * 40, "F1", "in_progress", T0.isoformat(), "web:4").to_json()
    read = AgentRecord.from_json({**rolling, "future": 1})
    assert read is not None and (read.result, read.engine, read.fingerprint) == ("succeeded", "agent", "F1")
    assert AgentRecord.from_json(None) is None and AgentRecord.from_json({}) is None


@pytest.mark.parametrize(
    ("spec", "steps", "bakes"),
    [
        ({"type": "canary", "canary": {"percent": 10, "bake": "5m"}}, (10, 100), (timedelta(minutes=5),)),
        ({"type": "canary", "canary": {"percent": 0.5, "bake": "1m"}}, (1, 100), (timedelta(minutes=1),)),
        (
            {"type": "linear", "linear": {"stepPercent": 25, "stepBake": "1m"}},
            (25, 50, 75, 100),
            (timedelta(minutes=1),) * 3,
        ),
        (
            {"type": "linear", "linear": {"stepPercent": 30, "stepBake": "90s"}},
            (30, 60, 90, 100),
            (timedelta(seconds=90),) * 3,
        ),
        ({"type": "blueGreen"}, (100,), ()),
    ],
)
def test_strategy_steps(spec: dict, steps: tuple[int, ...], bakes: tuple[timedelta, ...]) -> None:
    """A strategy spec becomes green production weights in order and a bake after each but the last."""
    strategy = Strategy.from_spec(spec)
    assert (strategy.steps, strategy.step_bakes) == (steps, bakes)


def test_strategy_alarms_and_hooks() -> None:
    """Alarm references become names; hooks get their defaults (5m, rollback)."""
    strategy = Strategy.from_spec(
        {
            "type": "blueGreen",
            "bake": "2m",
            "rollbackOn": {
                "alarms": ["arn:aws:cloudwatch:eu-west-1:1:alarm:web-5xx", {"name": "p99"}, "plain"]
            },
            "hooks": [
                {
                    "stage": "postTestTraffic",
                    "lambda": "arn:aws:lambda:eu-west-1:1:function:f",
                    "timeout": "30s",
                    "onTimeout": "continue",
                },
                {"stage": "preScaleUp", "url": "https://x"},
            ],
        }
    )
    assert strategy.alarms == ("web-5xx", "p99", "plain") and strategy.bake == timedelta(minutes=2)
    assert strategy.hooks == (
        Hook(
            "postTestTraffic",
            None,
            "arn:aws:lambda:eu-west-1:1:function:f",
            timedelta(seconds=30),
            "continue",
        ),
        Hook("preScaleUp", "https://x", None, timedelta(minutes=5), "rollback"),
    )
    with pytest.raises(ValueError, match="rolling"):
        Strategy.from_spec({"type": "rolling"})


def test_decision_record_is_per_commit() -> None:
    """A new rollout's record names the commit, the fingerprint, blue and (once known) the target."""
    world = World(CANARY)
    world.tick()
    assert world.record is not None
    assert (world.record.sha, world.record.fingerprint, world.record.blue) == ("a" * 40, "F2", td(4))
    world.settle(world.now + POLL)
    world.tick()
    assert world.record.task_definition == td(5)
    assert advance(world.record, world.observation(), CANARY, world.now).record.started_at == T0.isoformat()


def test_revert_resumed_after_a_crash_still_says_rolled_back() -> None:
    """If the revert's record was lost after its calls ran, the next tick still reports the rollback."""
    world = World(CANARY)
    world.run_until("canary 10 % baking")
    in_flight = world.record
    world.commit = Commit("c" * 40, "F1", 4)
    world.tick()
    world.record = in_flight  # the store write did not happen
    world.settle(world.now + POLL)
    decision = world.tick()
    assert (decision.actions, decision.state, decision.description) == ((), SUCCESS, "rolled back to web:4")


def test_newer_commit_during_the_final_bake_goes_back_to_the_old_blue_first() -> None:
    """A newer commit while the superseded green is already primary makes the old blue primary again,
    then rolls the new content out from it."""
    world = World(CANARY, test_rule=True)
    world.run_until("final bake")
    blue, green = world.by_revision(4), world.by_revision(5)
    world.commit = Commit("d" * 40, "F3", 6)
    abort = world.tick()
    assert abort.actions == (BACK_PROD, BACK_TEST, SetPrimary(blue.arn), DeleteTaskSet(green.arn))
    assert (abort.state, abort.description) == (
        PENDING,
        "aborting web:5: traffic back on web:4, then web:(new)",
    )
    assert abort.record.blue == td(4)
    assert world.run().description == "web:6 serving 100 %"
    assert_done(world, revision=6)
