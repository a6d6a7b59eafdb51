"""Reconcile's engine dispatch on manifests-example: windows hold a rolling rollout; a freeze holds an ecs
engine rollout, whose production traffic then waits for the maintenance window at its PAUSE hook; and an
AWS refusal in the middle of an agent-engine rollout fails it for good and cleans up.

Each test starts a sandbox of its own on a manual clock at a known instant (windows are cron schedules in
Europe/Berlin and UTC), with the agent's clock moved in step (Story.advance).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from gitops_story import Story

from agent.sandbox.faults import Fault
from agent.sandbox.harness import EXAMPLE
from agent.sandbox.server import Sandbox
from agent.sandbox.simulator import SandboxClock
from agent.sandbox.traffic_invariant import check_traffic

REPORTS = "services/reports.yaml"
API_TD = "taskdefs/api.json"
WEB_TD = "taskdefs/web.json"
CANARY_HOOK = """  hooks:
    - stage: postTestTraffic
      url: http://127.0.0.1:8099/hooks/smoke
      timeout: 2m
      onTimeout: rollback
"""


def _sandbox_at(start: datetime) -> Sandbox:
    sandbox = Sandbox(clock=SandboxClock(manual=True, start=start), task_start_seconds=2.0)
    sandbox.start()
    sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
    return sandbox


@pytest.fixture
def june_evening() -> Iterator[Sandbox]:
    """Tuesday 2026-06-09 19:00 UTC = 21:00 in Berlin: weekday-nights (22:00, 6 h) opens in an hour."""
    sandbox = _sandbox_at(datetime(2026, 6, 9, 19, 0, tzinfo=UTC))
    yield sandbox
    sandbox.stop()


@pytest.fixture
def before_year_end() -> Iterator[Sandbox]:
    """Friday 2026-12-18 12:00 UTC: no window open; year-end-freeze starts on the 20th."""
    sandbox = _sandbox_at(datetime(2026, 12, 18, 12, 0, tzinfo=UTC))
    yield sandbox
    sandbox.stop()


def _status(result: Any, service: str) -> tuple[str, str]:
    status = result.statuses[f"ecs-gitops/prod/{service}"]
    return status.state, status.description


def test_a_rolling_rollout_waits_for_its_maintenance_window(june_evening: Sandbox, tmp_path: Path) -> None:
    """Creating services waits for no window; a later bump of reports (weekday-nights) outside the window
    makes no AWS write and asks to be woken when it opens at 22:00 Berlin, then rolls out."""
    story = Story(june_evening, tmp_path)
    story.commit("deploy manifests-example")
    first = story.settle()
    assert first.statuses["ecs-gitops"].state == "success"
    assert story.clock.now() < datetime(2026, 6, 9, 20, 0, tzinfo=UTC)

    bump = story.commit("reports on 3.13", {REPORTS: ("python:3.12-slim", "python:3.13-slim")})
    story.aws.counter.reset()
    held = story.agent.tick()
    assert held is not None
    assert _status(held, "reports") == (
        "pending",
        "waiting for maintenance window weekday-nights, opens 22:00 Europe/Berlin",
    )
    assert held.wake_at == datetime(2026, 6, 9, 20, 0, tzinfo=UTC)
    assert story.aws.counter.mutating() == {}
    assert story.notes(bump)["ecs-gitops/prod/reports"]["state"] == "pending"

    story.advance((held.wake_at - story.clock.now()).total_seconds())
    opened = story.agent.tick()
    assert opened is not None and opened.outcome == "applied"
    assert story.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": 1, "ecs.UpdateService": 1}
    done = story.settle()
    assert _status(done, "reports") == ("success", "reports:2 running 2/2")


def test_a_freeze_holds_an_ecs_engine_rollout_even_in_its_maintenance_window(
    before_year_end: Sandbox, tmp_path: Path
) -> None:
    """During year-end-freeze a bump of api (ecs blue/green; windows weekday-nights and year-end-freeze) is
    pending "frozen by ..." at 22:30 Berlin on a Monday, with nothing written to AWS; when the freeze ends
    on a Sunday the deployment starts at once and its production traffic waits at the PAUSE hook for
    Monday's maintenance window, then it finishes."""
    story = Story(before_year_end, tmp_path)
    story.commit("deploy manifests-example")
    assert story.settle().statuses["ecs-gitops"].state == "success"

    story.advance((datetime(2026, 12, 21, 21, 30, tzinfo=UTC) - story.clock.now()).total_seconds())
    bump = story.commit("api 2.4.2", {API_TD: ("acme/api:2.4.1", "acme/api:2.4.2")})
    story.aws.counter.reset()
    frozen = story.agent.tick()
    assert frozen is not None
    assert _status(frozen, "api") == ("pending", "frozen by year-end-freeze until 2027-01-03 00:00 UTC")
    assert frozen.wake_at == datetime(2027, 1, 3, tzinfo=UTC)
    assert story.aws.counter.mutating() == {}
    assert story.notes(bump)["ecs-gitops"]["description"] == "rolling out 1: api"

    story.advance((frozen.wake_at - story.clock.now()).total_seconds())
    sunday = story.agent.tick()
    assert sunday is not None
    assert _status(sunday, "api") == ("pending", "rolling out api:(new) (blue/green)")
    assert story.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": 1, "ecs.UpdateService": 1}

    waiting = ("pending", "waiting for maintenance window weekday-nights, opens Mon 22:00 Europe/Berlin")
    held = sunday
    for _ in range(30):  # green scales up; ECS then holds production traffic at the PAUSE hook
        assert held.wake_at is not None and held.wake_at < datetime(2027, 1, 4, tzinfo=UTC)
        story.advance(max(1.0, (held.wake_at - story.clock.now()).total_seconds()))
        held = story.agent.tick()
        assert held is not None
        if _status(held, "api") == waiting:
            break
    assert _status(held, "api") == waiting
    assert held.wake_at == datetime(2027, 1, 4, 21, 0, tzinfo=UTC)
    assert story.aws.counter.counts.get("ecs.ContinueServiceDeployment", 0) == 0
    ecs = before_year_end.client("ecs")
    newest = ecs.list_service_deployments(cluster="prod", service="api")["serviceDeployments"][0]
    assert newest["status"] == "IN_PROGRESS"

    story.advance((held.wake_at - story.clock.now()).total_seconds())
    done = story.settle()
    assert story.aws.counter.counts.get("ecs.ContinueServiceDeployment", 0) >= 1
    assert _status(done, "api")[0] == "success"
    assert story.running("prod", "api") == "api:2"


def test_aws_refusing_a_traffic_step_fails_the_rollout_and_it_is_cleaned_up(
    june_evening: Sandbox, tmp_path: Path
) -> None:
    """ModifyRule refused (AccessDenied) while canarying web: failure status naming the call, the content is
    not retried, and once AWS accepts calls again the green task set is removed; traffic never left blue."""
    story = Story(june_evening, tmp_path)
    strategies = story.root / "strategies" / "strategies.yaml"
    strategies.write_text(strategies.read_text().replace(CANARY_HOOK, ""))
    story.commit("deploy manifests-example, canary without hook")
    story.settle()
    rules = _rule_arns(june_evening)

    bump = story.commit("web 1.28", {WEB_TD: ("nginx:1.27", "nginx:1.28")})
    june_evening.faults.add(
        Fault("ModifyRule", code="AccessDenied", status=403, message="elasticloadbalancing:ModifyRule")
    )
    result = None
    for _ in range(10):
        result = story.agent.tick()
        assert result is not None
        check_traffic(june_evening, "prod", "web", rules["web-prod"], rules["web-test"])
        if _status(result, "web")[0] != "pending":
            break
        story.advance(max(1.0, (result.wake_at - story.clock.now()).total_seconds()))
    assert result is not None
    state, description = _status(result, "web")
    assert state == "failure"
    assert description.startswith("ModifyRule: AccessDenied")
    assert story.notes(bump)["ecs-gitops/prod/web"]["state"] == "failure"

    june_evening.faults.clear()
    story.aws.counter.reset()
    story.advance(5)
    cleanup = story.settle()
    assert _status(cleanup, "web") == (state, description)
    calls = story.aws.counter.mutating()
    assert calls.get("ecs.DeleteTaskSet") == 1 and "ecs.CreateTaskSet" not in calls
    snapshot = check_traffic(june_evening, "prod", "web", rules["web-prod"], rules["web-test"])
    assert snapshot.weight("web-blue") == 100
    assert [ts["taskDefinition"].rsplit("/", 1)[1] for ts in snapshot.task_sets] == ["web:1"]

    story.aws.counter.reset()
    story.advance(60)
    story.agent.tick()
    assert story.aws.counter.mutating() == {}  # the failed content is not tried again


def _rule_arns(sandbox: Sandbox) -> dict[str, str]:
    elb = sandbox.client("elbv2")
    out = {}
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        for listener in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            for rule in elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
                if rule["IsDefault"]:
                    continue
                tags = elb.describe_tags(ResourceArns=[rule["RuleArn"]])["TagDescriptions"][0]["Tags"]
                out[next(t["Value"] for t in tags if t["Key"] == "Name")] = rule["RuleArn"]
    return out
