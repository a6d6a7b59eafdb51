"""The ecs engine end to end: ECS-native BLUE_GREEN / LINEAR / CANARY deployments, gated and watched by
the agent, on the sim sandbox with a driven clock (a bare git remote, the agent, HTTP).

The service under test is manifests-example's ``api`` (blue/green on engine ecs, 3 tasks, its own target
groups and listener rules). Each test starts from an empty sandbox and removes ``year-end-freeze`` from
``api`` so the outcome does not depend on the date the suite runs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gitops_story import Story

from agent.rollout.windows import Window
from agent.sandbox.harness import EXAMPLE

API = "services/api.yaml"
API_TD = "taskdefs/api.json"
CONTEXT = "ecs-gitops/prod/api"
WINDOWS_LINE = "  windows: [weekday-nights, year-end-freeze]\n"
STRATEGY_LINE = "  strategy: blue-green\n"
BUMP = {API_TD: ("acme/api:2.4.1", "acme/api:2.4.2")}
STRATEGIES = {
    "blueGreen": "  strategy: {type: blueGreen, engine: ecs, bake: 3m}\n",
    "canary": "  strategy: {type: canary, engine: ecs, canary: {percent: 10, bake: 4m}, bake: 2m,"
    " rollbackOn: {alarms: [{name: api-5xx}]}}\n",
    "linear": "  strategy: {type: linear, engine: ecs, linear: {stepPercent: 25, stepBake: 1m}, bake: 1m}\n",
}
NIGHTS = Window.from_spec(
    "weekday-nights",
    {"type": "maintenance", "schedule": "0 22 * * 1-5", "duration": "6h", "timezone": "Europe/Berlin"},
)


@pytest.fixture
def story(sim_sandbox, tmp_path: Path) -> Story:
    """A fresh sandbox (seeded) and a Story on it."""
    sim_sandbox.reset()
    sim_sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
    sim_sandbox.simulator.configure(
        task_start_seconds=2.0, failure_pattern="*:broken*", alarm_poll_seconds=60
    )
    return Story(sim_sandbox, tmp_path)


def deploy(story: Story, strategy: str = "blueGreen", windows: str = "") -> str:
    """The first commit: manifests-example with ``api``'s strategy and windows as given, settled."""
    edits = {API: (STRATEGY_LINE + WINDOWS_LINE, STRATEGIES[strategy] + windows)}
    text = (story.root / API).read_text()
    assert STRATEGY_LINE + WINDOWS_LINE in text, "services/api.yaml changed: adapt this test"
    sha = story.commit("deploy", edits)
    story.settle()
    assert story.notes(sha)[CONTEXT]["state"] == "success", story.notes(sha)[CONTEXT]
    return sha


def follow(story: Story, until: Any = None, max_ticks: int = 200) -> list[tuple[str, str]]:
    """Tick, moving both clocks to each wake-up, until nothing is pending (or ``until(status)``); the
    api statuses seen, in order, without repeats."""
    seen: list[tuple[str, str]] = []
    for _ in range(max_ticks):
        result = story.agent.tick()
        assert result is not None
        status = result.statuses.get(CONTEXT)
        if status is not None and (not seen or seen[-1] != (status.state, status.description)):
            seen.append((status.state, status.description))
            if until is not None and until(status):
                return seen
        if result.wake_at is None:
            return seen
        story.advance(max(1.0, (result.wake_at - story.clock.now()).total_seconds()))
    raise AssertionError(f"api did not settle: {seen[-5:]}")


def deployments(story: Story) -> list[dict[str, Any]]:
    ecs = story.sandbox.client("ecs")
    briefs = ecs.list_service_deployments(cluster="prod", service="api")["serviceDeployments"]
    arns = [b["serviceDeploymentArn"] for b in briefs]
    return (
        list(ecs.describe_service_deployments(serviceDeploymentArns=arns)["serviceDeployments"])
        if arns
        else []
    )


def calls(story: Story, *operations: str) -> dict[str, int]:
    return {op: story.aws.counter.counts.get(f"ecs.{op}", 0) for op in operations}


# -- each native strategy to success --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "ecs_strategy", "milestones"),
    [
        ("blueGreen", "BLUE_GREEN", ["api:2 at 100 %, final bake, 3 min left"]),
        ("canary", "CANARY", ["canary 10 % baking, 4 min left", "api:2 at 100 %, final bake, 2 min left"]),
        ("linear", "LINEAR", ["linear 25 % baking, 60 s left", "linear 50 % baking", "linear 75 % baking"]),
    ],
)
def test_native_strategy_rolls_out_to_success(
    story: Story, strategy: str, ecs_strategy: str, milestones
) -> None:
    """An image bump on a native strategy is one UpdateService; ECS shifts the traffic and bakes; the
    commit status follows each step ("canary 10 % baking, 4 min left") and ends in success, with the
    blue revision gone."""
    deploy(story, strategy)
    story.aws.counter.reset()
    bump = story.commit("api 2.4.2", BUMP)
    seen = follow(story)
    assert seen[0] == (
        "pending",
        f"rolling out api:(new) ({ {'blueGreen': 'blue/green'}.get(strategy, strategy) })",
    )
    descriptions = [d for _, d in seen]
    for milestone in milestones:
        assert any(d.startswith(milestone) for d in descriptions), (milestone, descriptions)
    kind = {"blueGreen": "blue/green"}.get(strategy, strategy)
    assert seen[-1] == ("success", f"api:2 running 3/3 ({kind})")
    assert story.notes(bump)[CONTEXT]["state"] == "success"
    assert story.notes(bump)["ecs-gitops"]["state"] == "success"
    assert story.running("prod", "api") == "api:2"
    newest = deployments(story)[0]
    assert newest["status"] == "SUCCESSFUL" and newest["deploymentConfiguration"]["strategy"] == ecs_strategy
    assert calls(story, "UpdateService", "StopServiceDeployment", "ContinueServiceDeployment") == {
        "UpdateService": 1,
        "StopServiceDeployment": 0,
        "ContinueServiceDeployment": 0,
    }
    story.aws.counter.reset()
    story.advance(300)
    story.agent.tick()
    assert calls(story, "ListServiceDeployments", "DescribeServiceDeployments") == {
        "ListServiceDeployments": 0,
        "DescribeServiceDeployments": 0,
    }  # a steady service costs no service-deployment read


# -- maintenance windows ------------------------------------------------------------------------------------


def _close_the_window(story: Story) -> None:
    """Move both clocks to a moment when weekday-nights is closed and opens at least an hour later."""
    now = story.clock.now()
    interval = NIGHTS.occurrence_at(now)
    if interval is not None:
        story.advance((interval[1] - now).total_seconds() + 60)
    if NIGHTS.next_opening(story.clock.now()) - story.clock.now() < timedelta(hours=1):
        story.advance(6 * 3600 + 120)


def test_pause_is_held_while_the_window_is_closed_and_continued_when_it_opens(story: Story) -> None:
    """With a maintenance window, green scales up and takes test traffic at once, but ECS holds the
    agent's PAUSE hook before production traffic: the status says when the window opens, no
    ContinueServiceDeployment is sent before then, and the rollout finishes once it has opened."""
    deploy(story, "canary", windows="  windows: [weekday-nights]\n")
    _close_the_window(story)
    opens = NIGHTS.next_opening(story.clock.now())
    story.aws.counter.reset()
    bump = story.commit("api 2.4.2", BUMP)
    seen = follow(story, until=lambda s: s.description.startswith("waiting for maintenance window"))
    assert seen[-1][1].startswith("waiting for maintenance window weekday-nights, opens ")
    assert seen[-1][1].endswith("Europe/Berlin")
    held = deployments(story)[0]
    assert held["targetServiceRevision"]["requestedProductionTrafficWeight"] == 0.0
    assert held["targetServiceRevision"]["requestedTestTrafficWeight"] == 100.0
    assert [(h["targetType"], h["status"]) for h in held["lifecycleHookDetails"]] == [
        ("PAUSE", "AWAITING_ACTION")
    ]

    story.advance((opens - story.clock.now()).total_seconds() - 120)  # two minutes before it opens
    story.agent.tick()
    assert calls(story, "ContinueServiceDeployment")["ContinueServiceDeployment"] == 0
    assert story.notes(bump)[CONTEXT]["state"] == "pending"

    seen = follow(story)
    assert seen[-1][0] == "success"
    assert any(d.startswith("api:2: moving production traffic (window weekday-nights open)") for _, d in seen)
    assert any(d.startswith("canary 10 % baking") for _, d in seen)
    # one PAUSE before each production step (10 %, 100 %), each continued inside the window
    assert calls(story, "ContinueServiceDeployment")["ContinueServiceDeployment"] == 2
    record = story.sandbox.simulator.service_deployments.by_arn[deployments(story)[0]["serviceDeploymentArn"]]
    pauses = [h for h in record.hook_log if h.target_type == "PAUSE"]
    assert len(pauses) == 2 and all(h.finished_at >= opens.timestamp() for h in pauses)
    assert all(h.status == "SUCCEEDED" for h in pauses)


# -- fast rollback ----------------------------------------------------------------------------------------


def test_alarm_during_the_canary_bake_rolls_back_before_ecs_polls_it(story: Story) -> None:
    """An alarm of rollbackOn.alarms in ALARM during the canary bake: on its next tick the agent sends
    StopServiceDeployment(ROLLBACK) (ECS polls alarms only every 60 s); traffic is back on blue, the
    commit fails naming the alarm, and the same content is not tried again."""
    deploy(story, "canary")
    story.aws.counter.reset()
    bump = story.commit("api 2.4.2", BUMP)
    follow(story, until=lambda s: s.description.startswith("canary 10 % baking"))
    cloudwatch = story.sandbox.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName="api-5xx", StateValue="ALARM", StateReason="test")
    try:
        result = story.agent.tick()
        assert result is not None
        assert result.statuses[CONTEXT].description == "rolling back api:2: alarm api-5xx in ALARM"
        assert calls(story, "StopServiceDeployment")["StopServiceDeployment"] == 1
        seen = follow(story)
    finally:
        cloudwatch.set_alarm_state(AlarmName="api-5xx", StateValue="OK", StateReason="test")
    assert seen[-1] == ("failure", "rolled back: alarm api-5xx in ALARM")
    assert story.notes(bump)[CONTEXT] | {"updatedAt": None} == {
        "state": "failure",
        "description": "rolled back: alarm api-5xx in ALARM",
        "targetUrl": None,
        "updatedAt": None,
    }
    assert story.running("prod", "api") == "api:1"
    rolled = deployments(story)[0]
    assert (
        rolled["status"] == "ROLLBACK_SUCCESSFUL" and "StopServiceDeployment" in rolled["rollback"]["reason"]
    )
    story.aws.counter.reset()
    story.advance(300)
    story.agent.tick()
    assert story.aws.counter.mutating() == {}  # the failed content is not retried


def test_revert_during_the_bake_is_a_rollback(story: Story) -> None:
    """Reverting a commit whose canary is baking sends StopServiceDeployment(ROLLBACK) at once; the
    revert succeeds as "rolled back to api:1" with nothing registered or deployed anew, and the reverted
    commit fails as superseded."""
    deploy(story, "canary")
    bump = story.commit("api 2.4.2", BUMP)
    follow(story, until=lambda s: s.description.startswith("canary 10 % baking"))
    story.aws.counter.reset()
    revert = story.revert(bump)
    result = story.agent.tick()
    assert result is not None and result.statuses[CONTEXT].description == "rolling back to api:1"
    assert calls(story, "StopServiceDeployment", "UpdateService", "RegisterTaskDefinition") == {
        "StopServiceDeployment": 1,
        "UpdateService": 0,
        "RegisterTaskDefinition": 0,
    }
    seen = follow(story)
    assert seen[-1] == ("success", "rolled back to api:1")
    assert story.notes(revert)["ecs-gitops"]["state"] == "success"
    superseded = story.notes(bump)
    assert superseded[CONTEXT]["state"] == "failure"
    assert superseded[CONTEXT]["description"] == f"superseded by {revert[:12]} before it finished"
    assert superseded["ecs-gitops"]["state"] == "failure"
    assert story.running("prod", "api") == "api:1" and story.revisions("api") == ["api:1", "api:2"]
    assert [d["status"] for d in deployments(story)] == ["ROLLBACK_SUCCESSFUL", "SUCCESSFUL"]
    assert calls(story, "UpdateService")["UpdateService"] == 0


# -- switching strategies ---------------------------------------------------------------------------------


def test_switching_strategy_is_planned_explicitly_and_done_in_place(story: Story) -> None:
    """rolling -> canary (ecs) is shown in the plan as a strategy switch and applied with one
    UpdateService while nothing is deploying; the next image bump is a native canary; switching back to
    rolling makes the one after a rolling deployment again."""
    deploy_sha = story.commit(
        "deploy rolling",
        {API: (STRATEGY_LINE + WINDOWS_LINE, "  strategy: rolling-safe\n")},
    )
    story.settle()
    assert story.notes(deploy_sha)[CONTEXT]["state"] == "success"
    story.commit("api: canary", {API: ("  strategy: rolling-safe\n", STRATEGIES["canary"])})
    text = _plan_text(story)
    assert "~ Service prod/api (strategy ROLLING -> CANARY, in place)" in text
    assert '~ /deploymentConfiguration/strategy: "ROLLING" -> "CANARY"' in text
    story.aws.counter.reset()
    seen = follow(story)
    assert seen[-1] == ("success", "api:1 running 3/3 (canary)")
    assert calls(story, "UpdateService")["UpdateService"] == 1
    assert deployments(story)[0]["deploymentConfiguration"]["strategy"] == "ROLLING"  # no new deployment

    story.commit("api 2.4.2", BUMP)
    seen = follow(story)
    assert any(d.startswith("canary 10 % baking") for _, d in seen) and seen[-1][0] == "success"
    assert deployments(story)[0]["deploymentConfiguration"]["strategy"] == "CANARY"

    story.commit("api: rolling again", {API: (STRATEGIES["canary"], "  strategy: rolling-safe\n")})
    assert "~ Service prod/api (strategy CANARY -> ROLLING, in place)" in _plan_text(story)
    story.settle()
    story.commit("api 2.4.3", {API_TD: ("acme/api:2.4.2", "acme/api:2.4.3")})
    story.settle()
    newest = deployments(story)[0]
    assert newest["status"] == "SUCCESSFUL" and newest["deploymentConfiguration"]["strategy"] == "ROLLING"
    assert "lifecycleStage" not in newest and story.running("prod", "api") == "api:3"


def test_switching_engines(story: Story) -> None:
    """web moves from engine agent (EXTERNAL, one PRIMARY task set) to engine ecs with one UpdateService
    of its deployment controller, shown in the plan; moving api the other way is refused with a failure
    status and no change to ECS."""
    deploy(story, "blueGreen")
    web = "services/web.yaml"
    role = "      containerPort: 8080\n"
    switch = story.commit(
        "web: engine ecs",
        {
            web: (
                "  strategy: canary-10\n",
                "  strategy: {type: blueGreen, engine: ecs, bake: 1m}\n",
            )
        },
    )
    path = story.root / web
    path.write_text(path.read_text().replace(role, role + "      role: {name: ecsInfrastructureRole}\n"))
    switch = story.commit("web: engine ecs, with the role ECS shifts traffic with")
    heading = "~ Service prod/web (strategy EXTERNAL -> BLUE_GREEN, in place: the PRIMARY task set becomes"
    assert heading in _plan_text(story)
    story.aws.counter.reset()
    story.settle()
    status = story.notes(switch)["ecs-gitops/prod/web"]
    assert status["state"] == "success", status
    ecs = story.sandbox.client("ecs")
    service = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    assert (
        service["deploymentController"] == {"type": "ECS"}
        and service["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
    )
    assert "taskSets" not in service and service["runningCount"] == 4

    refused = story.commit("api: engine agent", {API: (STRATEGIES["blueGreen"], "  strategy: linear-25\n")})
    story.aws.counter.reset()
    result = story.agent.tick()
    assert result is not None
    status = result.statuses[CONTEXT]
    assert status.state == "failure" and "needs the service re-created" in status.description
    assert story.aws.counter.mutating() == {}
    assert story.notes(refused)["ecs-gitops"]["state"] == "failure"


CANARY_HOOK = """  hooks:
    - stage: postTestTraffic
      url: http://127.0.0.1:8099/hooks/smoke
      timeout: 2m
      onTimeout: rollback
"""


def test_switching_engines_mid_agent_rollout_winds_it_down_first(story: Story) -> None:
    """A commit moving web to engine ecs while its agent-engine canary bakes at 10 %: in one tick the agent
    engine puts all traffic back on blue and deletes green (the canary's commit fails "superseded by ..."),
    then the controller switch is applied and web finishes as an ECS blue/green service."""
    strategies = story.root / "strategies/strategies.yaml"
    strategies.write_text(strategies.read_text().replace(CANARY_HOOK, ""))
    deploy(story, "blueGreen")
    context = "ecs-gitops/prod/web"
    canary = story.commit("web 1.28", {"taskdefs/web.json": ("nginx:1.27", "nginx:1.28")})
    for _ in range(30):
        result = story.agent.tick()
        assert result is not None and result.wake_at is not None
        if result.statuses[context].description.startswith("canary 10 % baking"):
            break
        story.advance(max(1.0, (result.wake_at - story.clock.now()).total_seconds()))
    assert _weights(story, "web-prod") == {"web-blue": 90, "web-green": 10}

    path = story.root / "services/web.yaml"
    role = "      containerPort: 8080\n"
    text = path.read_text().replace("  strategy: canary-10\n", "  strategy: {type: blueGreen, engine: ecs}\n")
    path.write_text(text.replace(role, role + "      role: {name: ecsInfrastructureRole}\n"))
    switch = story.commit("web: engine ecs")
    text = _plan_text(story)
    assert "~ Service prod/web (strategy EXTERNAL -> BLUE_GREEN: waiting)" in text
    assert "waits for one PRIMARY task set (2 now): the agent engine first puts all traffic" in text

    story.aws.counter.reset()
    wound = story.agent.tick()
    assert wound is not None
    assert (wound.statuses[context].state, wound.statuses[context].description) == (
        "pending",
        "switching from engine agent to BLUE_GREEN: traffic back on web:1, removing web:2",
    )
    assert story.aws.counter.mutating() == {"elbv2.ModifyRule": 2, "ecs.DeleteTaskSet": 1}
    assert _weights(story, "web-prod") == {"web-blue": 100, "web-green": 0}
    superseded = wound.other_statuses[(canary, context)]
    assert (superseded.state, superseded.description) == (
        "failure",
        f"superseded by {switch[:12]} before it finished",
    )
    assert story.notes(canary)[context]["state"] == "failure"

    story.settle()
    status = story.notes(switch)[context]
    assert status["state"] == "success", status
    service = story.ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    assert service["deploymentController"] == {"type": "ECS"}
    assert service["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
    assert story.running("prod", "web") == "web:2" and service["runningCount"] == 4


def _weights(story: Story, rule_name: str) -> dict[str, int]:
    """The production weights of the listener rule tagged ``Name=rule_name``, by target-group name."""
    elb = story.sandbox.client("elbv2")
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        for listener in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            for rule in elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
                tags = elb.describe_tags(ResourceArns=[rule["RuleArn"]])["TagDescriptions"][0]["Tags"]
                if {"Key": "Name", "Value": rule_name} in tags:
                    groups = rule["Actions"][0]["ForwardConfig"]["TargetGroups"]
                    names = [g["TargetGroupArn"].split(":targetgroup/")[1].split("/")[0] for g in groups]
                    return {name: g["Weight"] for name, g in zip(names, groups, strict=True)}
    raise AssertionError(f"no listener rule {rule_name}")


def _plan_text(story: Story) -> str:
    """``ecs-gitops plan`` of the work tree's HEAD, as text."""
    from agent.manifests.tree import DirTree
    from agent.plan.render import render_text

    return render_text(story.agent.reconciler.plan(DirTree(story.root)).plan)


def test_the_agents_clients_validate_every_request(story: Story) -> None:
    """botocore's parameter validation is on for the agent's clients: a malformed service-deployment
    request fails before it is sent (so every request these tests saw the agent send passed it)."""
    from botocore.exceptions import ParamValidationError

    ecs = story.aws.client("ecs")
    assert ecs.meta.config.parameter_validation is True
    with pytest.raises(ParamValidationError):
        ecs.continue_service_deployment(serviceDeploymentArn="arn", hookId=7, action="LATER")


SHORT_WINDOW = """---
apiVersion: ecs-gitops/v1
kind: Window
metadata:
  name: every-ten-minutes
spec:
  type: maintenance
  schedule: "*/10 * * * *"
  duration: 2m
  timezone: UTC
  overrun: rollback
"""


def test_window_closing_mid_canary_rolls_back_with_overrun_rollback(story: Story) -> None:
    """A maintenance window with overrun rollback that closes while the canary bakes (10 % of
    production traffic moved) rolls the deployment back at once and says why."""
    path = story.root / "windows/windows.yaml"
    path.write_text(path.read_text() + SHORT_WINDOW)
    deploy(story, "canary", windows="  windows: [every-ten-minutes]\n")
    now = story.clock.now()
    into = (now.minute % 10) * 60 + now.second
    story.advance(10 * 60 - into + 20)  # 20 s after an opening: open for 100 s more
    bump = story.commit("api 2.4.2", BUMP)
    seen = follow(story, until=lambda s: s.state != "pending")
    descriptions = [d for _, d in seen]
    assert any(
        d.startswith("api:2: moving production traffic (window every-ten-minutes open)") for d in descriptions
    )
    assert any(d.startswith("canary 10 % baking") for d in descriptions)
    assert "rolling back api:2: maintenance window every-ten-minutes closed mid-rollout" in descriptions
    follow(story)
    status = story.notes(bump)[CONTEXT]
    assert (status["state"], status["description"]) == (
        "failure",
        "rolled back: maintenance window every-ten-minutes closed mid-rollout",
    )
    assert story.running("prod", "api") == "api:1"
