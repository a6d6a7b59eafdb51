"""The pure parts of the engine dispatch (agent/engines/, agent/aws/traffic.py): windows holding a
rolling APPLY, a service's wiring, what counts as in sync, and the CreateTaskSet request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.aws.executing import client_token
from agent.aws.traffic import forward_action, task_set_request, task_set_view
from agent.engines.base import Tick, subject_of
from agent.engines.gating import hold_for_windows, windows_of
from agent.engines.taskset import (
    Rollout,
    TasksetEngine,
    _problem,
    _service_in_sync,
    _wiring,
    hands_back,
    takes,
)
from agent.manifests.model import Desired, Manifest, Source
from agent.plan.model import NO_CHANGE, UPDATE, Change, Plan, TaskDefinitionRef
from agent.plan.taskdefs import HASH_TAG
from agent.rollout.decisions import APPLY, FAILURE, PENDING, Decision, RolloutRecord
from agent.rollout.progressive import Strategy, Wiring
from agent.rollout.windows import gate

NIGHTS = {"type": "maintenance", "schedule": "0 22 * * 1-5", "duration": "6h", "timezone": "Europe/Berlin"}
FREEZE = {"type": "freeze", "schedule": "0 0 20 12 *", "duration": "336h", "timezone": "UTC"}
TUESDAY_NOON = datetime(2026, 6, 9, 10, 0, tzinfo=UTC)  # 12:00 in Berlin
TUESDAY_NIGHT = datetime(2026, 6, 9, 21, 0, tzinfo=UTC)  # 23:00 in Berlin
CHRISTMAS_NIGHT = datetime(2026, 12, 24, 21, 0, tzinfo=UTC)


class NoAws:
    def client(self, name: str) -> object:
        return object()  # nothing is read: there is no rule or alarm to ask about


def _manifest(name: str = "web", **spec: Any) -> Manifest:
    return Manifest("Service", name, {"cluster": "prod", **spec}, Source(f"services/{name}.yaml"))


def _desired(**spec: Any) -> Desired:
    return Desired(
        services={"web": _manifest(**spec)},
        windows={
            "weekday-nights": Manifest("Window", "weekday-nights", NIGHTS, Source("windows.yaml")),
            "year-end-freeze": Manifest("Window", "year-end-freeze", FREEZE, Source("windows.yaml")),
        },
    )


APPLYING = Decision((APPLY,), RolloutRecord("sha2", "f2", "in_progress", "t"), PENDING, "rolling out web:5")
OLD = RolloutRecord("sha1", "f1", "succeeded", "t")


@pytest.mark.parametrize(
    ("windows", "now", "creating", "expected"),
    [
        ([], TUESDAY_NOON, False, ("rolling out web:5", None)),
        (
            ["weekday-nights"],
            TUESDAY_NOON,
            False,
            (
                "waiting for maintenance window weekday-nights, opens 22:00 Europe/Berlin",
                datetime(2026, 6, 9, 20, 0, tzinfo=UTC),
            ),
        ),
        (["weekday-nights"], TUESDAY_NOON, True, ("rolling out web:5", None)),
        (["weekday-nights"], TUESDAY_NIGHT, False, ("rolling out web:5", None)),
        (
            ["weekday-nights", "year-end-freeze"],
            CHRISTMAS_NIGHT,
            True,
            ("frozen by year-end-freeze until 2027-01-03 00:00 UTC", datetime(2027, 1, 3, tzinfo=UTC)),
        ),
    ],
)
def test_windows_hold_an_apply(
    windows: list[str], now: datetime, creating: bool, expected: tuple[str, datetime | None]
) -> None:
    """A freeze holds every APPLY; maintenance windows hold one outside them, except creating a service."""
    desired = _desired(windows=windows)
    found = windows_of(desired.services["web"], desired)
    decision = hold_for_windows(APPLYING, OLD, gate(found, now) if found else None, creating)
    if expected[1] is None:
        assert decision is APPLYING
    else:
        assert decision == Decision((), OLD, PENDING, expected[0], expected[1])


def test_inline_windows_are_read_like_named_ones() -> None:
    """A window written inline in the service (with a name) counts like a Window manifest."""
    desired = _desired(windows=[{"name": "tonight", **NIGHTS}, "year-end-freeze", "no-such-window"])
    assert [w.name for w in windows_of(desired.services["web"], desired)] == ["tonight", "year-end-freeze"]


def test_wiring_comes_from_the_first_load_balancer() -> None:
    """Target groups, rules, container: resolved references as ARNs (strings or {arn: ...})."""
    manifest = _manifest(
        loadBalancers=[
            {
                "targetGroup": "arn:tg/blue",
                "alternateTargetGroup": {"arn": "arn:tg/green"},
                "productionListenerRule": "arn:rule/prod",
                "testListenerRule": "arn:rule/test",
                "containerName": "web",
                "containerPort": 8080,
            }
        ]
    )
    assert _wiring(manifest) == Wiring(
        ("arn:tg/blue", "arn:tg/green"), "arn:rule/prod", "arn:rule/test", "web", 8080
    )


def test_wiring_without_the_agent_engine_fields_says_what_is_missing() -> None:
    """Without alternateTargetGroup and productionListenerRule the service cannot be rolled out: a reason."""
    manifest = _manifest(
        loadBalancers=[{"targetGroup": "arn:tg/blue", "containerName": "web", "containerPort": 80}]
    )
    assert _wiring(manifest) == (
        "engine agent needs loadBalancers[0] alternateTargetGroup, productionListenerRule (services/web.yaml)"
    )


@pytest.mark.parametrize(
    ("change", "in_sync"),
    [
        (None, True),
        (Change("Service", "prod/web", NO_CHANGE), True),
        (Change("Service", "prod/web", UPDATE, request={"taskSet": {}}), True),
        (Change("Service", "prod/web", UPDATE, request={"taskSet": {}, "updateService": {}}), False),
        (Change("Service", "prod/web", UPDATE, request={"tagResource": {}}), False),
    ],
)
def test_a_service_is_in_sync_when_only_its_task_set_differs(change: Change | None, in_sync: bool) -> None:
    """The task-set part is the engine's business; UpdateService or tags left over mean not in sync."""
    assert _service_in_sync(change) is in_sync


def test_the_engine_takes_agent_services_that_have_a_primary_task_set() -> None:
    """engine agent with a PRIMARY task set: the agent engine's; before one exists, or another engine: not."""
    strategy = {"type": "canary", "engine": "agent", "canary": {"percent": 10}}
    desired = _desired(strategy=strategy)
    external = {"deploymentController": {"type": "EXTERNAL"}, "taskSets": [{"status": "PRIMARY"}]}
    observed: Any = type("Observed", (), {})()
    observed.services = {("prod", "web"): external}
    assert takes(desired.services["web"], desired, observed)
    observed.services = {("prod", "web"): {**external, "taskSets": [{"status": "ACTIVE"}]}}
    assert not takes(desired.services["web"], desired, observed)
    observed.services = {("prod", "web"): None}
    assert not takes(desired.services["web"], desired, observed)
    rolling = _desired(strategy={"type": "rolling"})
    observed.services = {("prod", "web"): external}
    assert not takes(rolling.services["web"], rolling, observed)


def test_a_service_leaving_the_agent_engine_is_wound_down_while_it_has_more_than_one_task_set() -> None:
    """Git moved web to another engine while it still runs two task sets on EXTERNAL: the agent engine
    winds it down (hands_back names the ECS strategy asked for); with one PRIMARY task set, on the ECS
    controller, or still on engine agent, it does not."""
    two = {
        "deploymentController": {"type": "EXTERNAL"},
        "taskSets": [{"status": "PRIMARY"}, {"status": "ACTIVE"}],
    }
    one = {**two, "taskSets": [{"status": "PRIMARY"}, {"status": "DRAINING"}]}
    observed: Any = type("Observed", (), {})()
    canary = _desired(strategy={"type": "canary", "engine": "ecs", "canary": {"percent": 10}})
    rolling = _desired()
    agent = _desired(strategy={"type": "canary", "engine": "agent", "canary": {"percent": 10}})
    observed.services = {("prod", "web"): two}
    assert hands_back(canary.services["web"], canary, observed) == "CANARY"
    assert hands_back(rolling.services["web"], rolling, observed) == "ROLLING"
    assert hands_back(agent.services["web"], agent, observed) is None
    observed.services = {("prod", "web"): one}
    assert hands_back(canary.services["web"], canary, observed) is None
    observed.services = {("prod", "web"): {"deploymentController": {"type": "ECS"}}}
    assert hands_back(canary.services["web"], canary, observed) is None


def test_leaving_the_agent_engine_without_the_wiring_to_undo_its_rollout_fails_and_says_why() -> None:
    """web moved to rolling while two task sets run on EXTERNAL, and its manifest no longer names the
    alternate target group and production rule: a failure naming what is missing, and no action."""

    balancer = {"targetGroup": "arn:tg/web-blue", "containerName": "web", "containerPort": 8080}
    desired = _desired(loadBalancers=[balancer])
    observed: Any = type("Observed", (), {})()
    observed.services = {
        ("prod", "web"): {
            "deploymentController": {"type": "EXTERNAL"},
            "taskSets": [{"status": "PRIMARY"}, {"status": "ACTIVE"}],
        }
    }
    # no executor, store or hooks: nothing is carried out
    engine = TasksetEngine(aws=NoAws(), executor=None, store=None, hooks=None)
    tick = Tick(Plan(()), desired, observed, "a" * 40)
    subject = subject_of(tick, "web", "F", None)
    rollouts = engine.observe(tick, [subject], TUESDAY_NOON)
    decision = engine.decide(tick, subject, rollouts["web"], TUESDAY_NOON)
    assert (decision.actions, decision.state) == ((), FAILURE)
    assert decision.description == (
        "switching to ROLLING: engine agent needs loadBalancers[0] alternateTargetGroup, "
        "productionListenerRule (services/web.yaml)"
    )


def test_create_task_set_request_points_at_green() -> None:
    """The plan's taskSet with green's target group, the commit sha, scale 100 % and the content-hash tag."""
    plan_task_set = {
        "taskDefinition": TaskDefinitionRef("web", "abc123", "arn:td/web:4"),
        "launchType": "FARGATE",
        "loadBalancers": [{"targetGroupArn": "arn:tg/blue", "containerName": "web", "containerPort": 8080}],
        "scale": {"unit": "PERCENT", "value": 100.0},
        "externalId": "old",
    }
    params = task_set_request(plan_task_set, "arn:td/web:5", "arn:tg/green", "sha5")
    assert params == {
        "taskDefinition": "arn:td/web:5",
        "launchType": "FARGATE",
        "loadBalancers": [{"targetGroupArn": "arn:tg/green", "containerName": "web", "containerPort": 8080}],
        "scale": {"unit": "PERCENT", "value": 100.0},
        "externalId": "sha5",
        "tags": [{"key": HASH_TAG, "value": "abc123"}],
    }
    assert plan_task_set["loadBalancers"][0]["targetGroupArn"] == "arn:tg/blue"  # the plan is not changed


def test_the_client_token_is_the_requests_own_and_fits_ecs_limits() -> None:
    """The same request (and commit) always gets the same token, at most 36 ASCII characters 33-126; another
    revision, commit (``externalId`` or the plan's) or operation gets another; a token already in the request
    is ignored."""
    params = {"cluster": "prod", "service": "web", "taskDefinition": "arn:td/web:5", "externalId": "sha5"}
    token = client_token("CreateTaskSet", params)
    assert token == client_token("CreateTaskSet", dict(reversed(params.items())))
    assert token == client_token("CreateTaskSet", {**params, "clientToken": "earlier"})
    assert len(token) <= 36 and all(33 <= ord(c) <= 126 for c in token)
    others = {
        client_token("CreateTaskSet", {**params, "taskDefinition": "arn:td/web:6"}),
        client_token("CreateTaskSet", {**params, "externalId": "sha6"}),
        client_token("CreateTaskSet", params, "sha6"),
        client_token("CreateService", params),
    }
    assert token not in others and len(others) == 4


def test_forward_action_and_task_set_view() -> None:
    """ModifyRule's Actions carry every weight; a described task set reads as the engine's view."""
    assert forward_action((("tg-a", 90), ("tg-b", 10))) == [
        {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": "tg-a", "Weight": 90},
                    {"TargetGroupArn": "tg-b", "Weight": 10},
                ]
            },
        }
    ]
    view = task_set_view(
        {
            "id": "ecs-svc/1",
            "taskSetArn": "arn:ts/1",
            "taskDefinition": "arn:td/web:5",
            "externalId": "sha5",
            "status": "ACTIVE",
            "loadBalancers": [{"targetGroupArn": "tg-b"}],
            "scale": {"value": 100.0, "unit": "PERCENT"},
            "runningCount": 3,
            "computedDesiredCount": 4,
            "stabilityStatus": "STEADY_STATE",
        }
    )
    assert (view.target_group, view.running, view.desired, view.stable) == ("tg-b", 3, 4, False)


def test_a_service_whose_listener_rule_is_gone_cannot_be_driven() -> None:
    """A listener rule that DescribeRules no longer returns is named; a complete wiring is no problem."""
    wiring = Wiring(("tg-a", "tg-b"), "arn:rule/prod", "arn:rule/test")
    rollout = Rollout(
        "web", "prod", "web", "web", Strategy.from_spec({"type": "blueGreen"}), wiring, {}, None
    )
    assert _problem(rollout, {"arn:rule/prod": {"tg-a": 100}}) == "listener rule arn:rule/test not found"
    assert _problem(rollout, {"arn:rule/prod": {}, "arn:rule/test": {}}) == ""
    incomplete = Rollout("web", "prod", "web", "web", rollout.strategy, "engine agent needs ...", {}, None)
    assert _problem(incomplete, {}) == "engine agent needs ..."


def test_which_agent_engine_decisions_start_a_rollout() -> None:
    """Creating green, or acting with a new in-progress record, starts a rollout (dependsOn holds it);
    the next steps of one under way, and the abort of a superseded one, do not."""
    from types import SimpleNamespace

    from agent.rollout.decisions import PENDING as PENDING_STATE
    from agent.rollout.decisions import Decision as Dec
    from agent.rollout.progressive import AgentRecord, CreateTaskSet, DeleteTaskSet, SetWeights

    def record(fingerprint: str, result: str = "in_progress") -> AgentRecord:
        return AgentRecord("sha", fingerprint, result, "2026-11-24T12:00:00+00:00", "arn:td/web:5")

    create = CreateTaskSet("arn:td/web:5", "arn:tg/web-green", "sha")
    weights = SetWeights("arn:rule/prod", (("arn:tg/web-blue", 90), ("arn:tg/web-green", 10)))
    abort = (SetWeights("arn:rule/prod", (("arn:tg/web-blue", 100), ("arn:tg/web-green", 0))),)
    abort += (DeleteTaskSet("arn:ts/green"),)

    starts_rollout = TasksetEngine(aws=NoAws(), executor=None, store=None, hooks=None).starts

    def starts(old: AgentRecord | None, actions: tuple, new: AgentRecord) -> bool:
        return starts_rollout(SimpleNamespace(record=old), Dec(actions, new, PENDING_STATE, "x"))  # type: ignore[arg-type]

    assert starts(None, (create,), record("F2"))
    assert starts(record("F1", "succeeded"), (weights,), record("F2"))
    assert not starts(record("F2"), (weights,), record("F2"))
    assert not starts(record("F1"), abort, record("F2"))
    assert not starts(record("F2"), (), record("F2"))
