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
STRATEGIES = "strategies/strategies.yaml"
SMOKE_HOOK = """  hooks:
    - stage: postTestTraffic
      url: http://127.0.0.1:8099/hooks/smoke
      timeout: 2m
      onTimeout: rollback
"""


@pytest.fixture
def story(sim_sandbox, tmp_path: Path) -> Story:
    story = Story(sim_sandbox, tmp_path)
    # reports leaves its maintenance window out (it rolls out in parallel at any hour of the story clock)
    # and web's canary its smoke-test hook (no hook server here: it would time out and roll back).
    edits = {
        WEB: ("dependsOn: [api]", "dependsOn: [api, worker]"),
        REPORTS: ("  windows: [weekday-nights]\n", ""),
        STRATEGIES: (SMOKE_HOOK, ""),
    }
    story.commit("deploy manifests-example", edits)
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


def _task_sets(story: Story, service: str) -> set[str]:
    """family:revision of every task set of an agent-engine service (a rollout's first act adds one)."""
    described = story.ecs.describe_services(cluster="prod", services=[service])["services"][0]
    return {str(ts["taskDefinition"]).rsplit("/", 1)[1] for ts in described.get("taskSets") or []}


def test_dependants_start_on_the_tick_their_dependency_succeeds(story: Story) -> None:
    """worker and web both change: web's rollout (agent engine: its green task set) starts only once
    worker's rollout has completed."""
    web = _running(story, "web")
    assert _task_sets(story, "web") == {web}
    story.commit("bump both", {WORKER_TD: ("worker:1.9.0", "worker:1.9.1"), WEB_TD: _web_image("1.27.2")})
    seen = []
    for _ in range(60):
        result = story.agent.tick()
        assert result is not None
        seen.append((result.statuses["ecs-gitops/prod/worker"].state, _task_sets(story, "web")))
        if result.wake_at is None or len(seen[-1][1]) > 1:
            break
        story.advance(max(1.0, (result.wake_at - story.clock.now()).total_seconds()))
    # web had no new task set on any tick where worker had not yet succeeded
    assert all(task_sets == {web} for state, task_sets in seen if state != "success")
    assert seen[0][0] == "pending" and seen[-1][0] == "success" and len(seen[-1][1]) == 2
