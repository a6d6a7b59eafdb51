"""The agent's own service (manifests-example/agent/) is reconciled like any other: it rolls itself to a
new image, and the new agent instance takes over from the state store without repeating work."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gitops_story import Story

from agent.daemon import Agent
from agent.status.model import CommitStatus

AGENT_TD = "agent/task-definition.json"
AGENT = "ecs-gitops/ops/ecs-gitops"


class Recorder:
    """A publisher wrapper that remembers every status it wrote (the real git-notes writes still happen)."""

    def __init__(self, inner: Any, log: list[tuple[str, CommitStatus]], who: str) -> None:
        self.inner, self.log, self.who, self.name = inner, log, who, inner.name

    def publish(self, status: CommitStatus) -> None:
        self.inner.publish(status)
        self.log.append((self.who, status))

    def read(self, sha: str) -> dict[str, dict]:
        return self.inner.read(sha)


def _record(agent: Agent, log: list[tuple[str, CommitStatus]], who: str) -> Agent:
    agent.outbox.publisher = Recorder(agent.outbox.publisher, log, who)
    return agent


@pytest.fixture
def story(sim_sandbox: Any, tmp_path: Path) -> Iterator[Story]:
    sim_sandbox.reset()
    sim_sandbox.seed(Path(__file__).resolve().parents[2] / "manifests-example" / "sandbox-seed.yaml")
    yield Story(sim_sandbox, tmp_path)


def test_the_agent_rolls_itself_out_and_its_successor_takes_over(story: Story) -> None:
    """The agent registers and rolls out its own new image; a new instance on the same state store follows
    the rollout to success with no second registration, no AWS write and no status written twice."""
    written: list[tuple[str, CommitStatus]] = []
    old = _record(story.agent, written, "old")
    story.commit("deploy manifests-example")
    story.settle(old)
    assert story.running("ops", "ecs-gitops") == "ecs-gitops:1"

    # The old agent applies its own image bump: one registration, one UpdateService of ops/ecs-gitops.
    bump = story.commit(
        "ecs-gitops 0.2.0", {AGENT_TD: ("ghcr.io/acme/ecs-gitops:0.1.0", "ghcr.io/acme/ecs-gitops:0.2.0")}
    )
    old.aws.counter.reset()
    result = old.tick()
    assert result is not None and result.outcome == "applied"
    assert result.statuses[AGENT].state == "pending"
    assert old.aws.counter.mutating() == {"ecs.RegisterTaskDefinition": 1, "ecs.UpdateService": 1}

    # ECS replaces the old task with the new one: a new Agent starts on the same data directory.
    new = _record(story.new_agent(), written, "new")
    story.advance(1)
    result = story.settle(new)
    assert result.statuses[AGENT].state == "success"
    assert result.statuses[AGENT].description == "ecs-gitops:2 running 1/1"
    assert story.running("ops", "ecs-gitops") == "ecs-gitops:2"
    assert story.revisions("ecs-gitops") == ["ecs-gitops:1", "ecs-gitops:2"]
    assert new.aws.counter.mutating() == {}

    # No status was written twice with the same content, across both instances; the successor wrote the
    # agent's own progress and the final success, and nothing about the services the old one had reported.
    seen = [(s.sha, s.context, s.state, s.description) for _, s in written]
    assert len(seen) == len(set(seen))
    by_new = {(s.context, s.state) for who, s in written if who == "new" and s.sha == bump}
    assert (AGENT, "success") in by_new and ("ecs-gitops", "success") in by_new
    assert {ctx for ctx, _ in by_new} == {AGENT, "ecs-gitops"}
    on_bump = story.agent.outbox.publisher.read(bump)
    assert on_bump[AGENT]["state"] == on_bump["ecs-gitops"]["state"] == "success"

    # Once settled, the successor's ticks change nothing and write nothing.
    count = len(written)
    story.advance(300)
    assert new.tick() is not None
    assert new.aws.counter.mutating() == {} and len(written) == count
