"""The GitOps loop end to end: a bare git remote, the agent, the sandbox over HTTP and a driven clock.

A merge deploys, an image bump rolls out, a broken image is rolled back by the circuit breaker and
reported as a failure, a revert goes back to the earlier revision without registering a new one, and an
invalid commit changes nothing in ECS.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from gitops_story import Story

WORKER = "services/worker.yaml"
WORKER_TD = "taskdefs/worker.yaml"


@pytest.fixture
def story(sim_sandbox, tmp_path: Path) -> Story:
    return Story(sim_sandbox, tmp_path)


def test_merge_bump_break_and_revert(story: Story) -> None:
    """A merge deploys, a bump rolls out, a broken image is rolled back and reported, reverts reuse."""
    # (a) the first merge deploys everything; every commit status ends in success.
    first = story.commit("deploy manifests-example")
    result = story.settle()
    assert result.outcome == "unchanged"
    assert story.running("prod", "worker") == "worker:1"
    notes = story.notes(first)
    assert notes["ecs-gitops"]["state"] == "success"
    assert notes["ecs-gitops/prod/worker"]["state"] == "success"
    assert {"state", "description", "updatedAt", "targetUrl"} <= set(notes["ecs-gitops/prod/worker"])

    # (b) an image bump registers one revision and rolls it out.
    bump = story.commit("worker 1.9.1", {WORKER_TD: ("worker:1.9.0", "worker:1.9.1")})
    first_tick = story.agent.tick()
    assert first_tick is not None and first_tick.statuses["ecs-gitops/prod/worker"].state == "pending"
    story.settle()
    assert story.running("prod", "worker") == "worker:2"
    assert story.notes(bump)["ecs-gitops/prod/worker"]["state"] == "success"

    # (c) a broken image fails; the circuit breaker rolls back; the commit says so; no retry follows.
    broken = story.commit("worker broken", {WORKER_TD: ("worker:1.9.1", "worker:broken-2")})
    result = story.settle()
    assert result.outcome == "failed"
    assert story.running("prod", "worker") == "worker:2"
    status = story.notes(broken)["ecs-gitops/prod/worker"]
    assert status["state"] == "failure" and status["description"].startswith("rolled back")
    assert story.notes(broken)["ecs-gitops"]["state"] == "failure"
    story.aws.counter.reset()
    story.advance(300)
    story.agent.tick()
    assert story.aws.counter.mutating() == {}

    # (d) reverting the broken commit, then the bump, goes back revision by revision: nothing registered.
    story.revert(broken)
    story.settle()
    assert story.running("prod", "worker") == "worker:2"
    reverted = story.revert(bump)
    story.settle()
    assert story.running("prod", "worker") == "worker:1"
    assert story.revisions("worker") == ["worker:1", "worker:2", "worker:3"]
    assert story.notes(reverted)["ecs-gitops/prod/worker"]["state"] == "success"


def test_invalid_commit_gets_a_failure_status_and_changes_nothing(story: Story) -> None:
    """A commit with an invalid manifest is reported on the commit with file and field, and no AWS
    call that changes anything is made."""
    story.commit("deploy manifests-example")
    story.settle()
    bad = story.commit("typo", {WORKER: ("cluster: prod", "clustr: prod")})
    story.aws.counter.reset()
    result = story.agent.tick()
    assert result is not None and result.outcome == "invalid"
    assert story.aws.counter.mutating() == {}
    status = story.notes(bad)["ecs-gitops"]
    assert status["state"] == "failure"
    assert "services/worker.yaml" in status["description"] and "/spec" in status["description"]
    assert len(status["description"]) <= 140


def test_a_tick_with_nothing_new_writes_nothing(story: Story) -> None:
    """Once deployed, further ticks make no mutating AWS call and write no status."""
    sha = story.commit("deploy manifests-example")
    story.settle()
    before = story.notes(sha)
    story.aws.counter.reset()
    story.advance(timedelta(minutes=5).total_seconds())
    result = story.agent.tick()
    assert result is not None and result.outcome == "unchanged"
    assert story.aws.counter.mutating() == {}
    assert story.notes(sha) == before  # same updatedAt: nothing was written again
