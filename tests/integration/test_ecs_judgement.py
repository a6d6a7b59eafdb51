"""Rollouts are judged by ECS, not by the diff: the GitOps loop on the sandbox over HTTP, a driven clock.

* ECS stores a field the manifests do not say (the sandbox echoes one the normaliser does not know): the
  deployment COMPLETED and the revision carries the content-hash tag of what Git asked for, so the commit
  gets success, with the warning naming the field ECS's RegisterTaskDefinition answer added; later ticks
  register nothing and change nothing.
* A ROLLING deployment whose alarm goes into ALARM is failed and rolled back by ECS (the sandbox): the
  commit gets a failure naming the alarm.
"""

from __future__ import annotations

from typing import Any

import pytest
from gitops_story import Story

WORKER_TD = "taskdefs/worker.yaml"
STRATEGIES = "strategies/strategies.yaml"
ECHOING = ("RegisterTaskDefinition", "DescribeTaskDefinition")  # both answer with the task definition


@pytest.fixture
def story(sim_sandbox: Any, tmp_path: Any) -> Story:
    return Story(sim_sandbox, tmp_path)


def _echo_stop_timeout(call: Any, body: dict[str, Any]) -> dict[str, Any]:
    """ECS describing worker revisions with a field nobody wrote (stopTimeout, which the normaliser
    rightly keeps: its default depends on the launch type)."""
    definition = body.get("taskDefinition") or {}
    if definition.get("family") == "worker" and definition.get("revision", 0) >= 2:
        for container in definition.get("containerDefinitions") or []:
            container.setdefault("stopTimeout", 30)
    return body


def test_a_field_ecs_adds_is_not_a_rollback(story: Story) -> None:
    """A field ECS adds to a revision the agent registered ends in success with a warning naming it, with one
    registration and no write after it."""
    story.commit("deploy manifests-example")
    story.settle()
    overlay = story.sandbox.overlay
    for operation in ECHOING:
        overlay.post_processors.setdefault(operation, []).append(_echo_stop_timeout)
    try:
        bump = story.commit("worker 1.9.1", {WORKER_TD: ("worker:1.9.0", "worker:1.9.1")})
        story.aws.counter.reset()
        result = story.settle()
        assert result.outcome != "failed"
        assert story.running("prod", "worker") == "worker:2"
        status = story.notes(bump)["ecs-gitops/prod/worker"]
        assert status["state"] == "success", status
        # The revision carries the content-hash tag of what Git asked for, so the plan shows no difference;
        # the RegisterTaskDefinition answer held a field the request did not: the status names it.
        assert status["description"].startswith("ECS returned /taskDefinition/containerDefinitions/"), status
        gap = "/stopTimeout that the manifest does not say; add it or report a normaliser gap"
        assert gap in status["description"]
        assert story.notes(bump)["ecs-gitops"]["state"] == "success"
        assert story.aws.counter.mutating().get("ecs.RegisterTaskDefinition") == 1

        # Later ticks: nothing registered, nothing updated, the status stays.
        story.aws.counter.reset()
        for _ in range(3):
            story.advance(300)
            story.agent.tick()
        assert story.aws.counter.mutating() == {}
        assert story.revisions("worker") == ["worker:1", "worker:2"]
        assert story.notes(bump)["ecs-gitops/prod/worker"] == status
    finally:
        for operation in ECHOING:
            overlay.post_processors[operation].remove(_echo_stop_timeout)


def test_an_alarm_rolls_a_rolling_deployment_back_and_fails_the_commit(story: Story) -> None:
    story.commit("deploy manifests-example")
    story.settle()
    alarmed = story.commit(
        "worker 1.9.2, rolled back on api-5xx",
        {
            WORKER_TD: ("worker:1.9.0", "worker:1.9.2"),
            STRATEGIES: ("    circuitBreaker: true\n", "    circuitBreaker: true\n    alarms: [api-5xx]\n"),
        },
    )
    first = story.agent.tick()  # applies: the deployment starts
    assert first is not None and first.statuses["ecs-gitops/prod/worker"].state == "pending"
    story.sandbox.set_alarm("api-5xx", "ALARM")
    try:
        result = story.settle()
    finally:
        story.sandbox.set_alarm("api-5xx", "OK")
    assert result.outcome == "failed"
    status = story.notes(alarmed)["ecs-gitops/prod/worker"]
    assert status["state"] == "failure", status
    assert "api-5xx" in status["description"] and status["description"].startswith("rolled back")
    service = story.ecs.describe_services(cluster="prod", services=["worker"])["services"][0]
    assert service["deploymentConfiguration"]["alarms"]["alarmNames"] == ["api-5xx"]
    assert story.running("prod", "worker").startswith("worker:")
    assert story.running("prod", "worker") != story.revisions("worker")[-1]
