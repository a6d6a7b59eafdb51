"""Ordered rollouts on the sandbox: a service starts only after what it dependsOn rolled out, a failed
dependency stops its dependants (their statuses say so), and independent services roll out meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitops_story import Story

from agent.aws.observing import current_task_definition

WEB = "services/web.yaml"
WEB_TD = "taskdefs/web.json"
WORKER_TD = "taskdefs/worker.yaml"
REPORTS = "services/reports.yaml"


@pytest.fixture
def story(sim_sandbox, tmp_path: Path) -> Story:
    story = Story(sim_sandbox, tmp_path)
    story.commit("deploy manifests-example", {WEB: ("dependsOn: [api]", "dependsOn: [api, worker]")})
    story.settle()
    return story


def _running(story: Story, service: str) -> str:
    """family:revision a service runs, also for web (agent engine: its PRIMARY task set's)."""
    described = story.ecs.describe_services(cluster="prod", services=[service])["services"][0]
    return str(current_task_definition(described)).rsplit("/", 1)[1]


def _web_image(version: str) -> tuple[str, str]:
    return ('"image": "public.ecr.aws/nginx/nginx:1.27"', f'"image": "public.ecr.aws/nginx/nginx:{version}"')


def test_a_failing_dependency_stops_its_dependants(story: Story) -> None:
    """worker breaks: web (dependsOn worker) never starts and says why; reports rolls out in parallel."""
    web, reports = _running(story, "web"), _running(story, "reports")
    sha = story.commit(
        "worker broken, web and reports bumped",
        {
            WORKER_TD: ("worker:1.9.0", "worker:broken-2"),
            WEB_TD: _web_image("1.27.1"),
            REPORTS: ("LOG_LEVEL, value: info", "LOG_LEVEL, value: debug"),
        },
    )
    first = story.agent.tick()
    assert first is not None
    assert first.statuses["ecs-gitops/prod/web"].description == "waiting for worker"
    assert first.statuses["ecs-gitops/prod/worker"].description.startswith("rolling out")
    assert first.statuses["ecs-gitops/prod/reports"].description.startswith("rolling out")  # same tick
    assert _running(story, "web") == web

    result = story.settle()
    assert result.outcome == "failed"
    notes = story.notes(sha)
    assert notes["ecs-gitops/prod/worker"]["state"] == "failure"
    assert notes["ecs-gitops/prod/web"] == {
        **notes["ecs-gitops/prod/web"],
        "state": "failure",
        "description": "not started: dependency worker failed",
    }
    assert notes["ecs-gitops/prod/reports"]["state"] == "success"
    assert _running(story, "web") == web  # never touched
    assert _running(story, "reports") != reports
    assert notes["ecs-gitops"]["description"] == "2 failed: web, worker"

    # The fix rolls worker out first, then web.
    worker = _running(story, "worker")
    fixed = story.commit("worker fixed", {WORKER_TD: ("worker:broken-2", "worker:1.9.1")})
    tick = story.agent.tick()
    assert tick is not None and tick.statuses["ecs-gitops/prod/web"].description == "waiting for worker"
    story.settle()
    assert _running(story, "worker") != worker and _running(story, "web") != web
    assert story.notes(fixed)["ecs-gitops/prod/web"]["state"] == "success"


def test_dependants_start_on_the_tick_their_dependency_succeeds(story: Story) -> None:
    """worker and web both change: web's update is sent only once worker's rollout has completed."""
    web = _running(story, "web")
    story.commit("bump both", {WORKER_TD: ("worker:1.9.0", "worker:1.9.1"), WEB_TD: _web_image("1.27.2")})
    seen = []
    for _ in range(60):
        result = story.agent.tick()
        assert result is not None
        seen.append((result.statuses["ecs-gitops/prod/worker"].state, _running(story, "web")))
        if result.wake_at is None:
            break
        story.advance(max(1.0, (result.wake_at - story.clock.now()).total_seconds()))
    # web was still on its old revision on every tick where worker had not yet succeeded
    assert all(running == web for state, running in seen if state != "success")
    assert seen[0][0] == "pending" and seen[-1][0] == "success" and seen[-1][1] != web
