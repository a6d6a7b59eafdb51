"""The GitOps loop end to end: a bare git remote, the agent, the sandbox over HTTP and a driven clock.

A merge deploys, an image bump rolls out, a broken image is rolled back by the circuit breaker and
reported as a failure, a revert goes back to the earlier revision without registering a new one, and an
invalid commit changes nothing in ECS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import git
import pytest

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.reconcile import TickResult
from agent.testing import EXAMPLE, FakeClock

WORKER = "services/worker.yaml"
WORKER_TD = "taskdefs/worker.yaml"


class Story:
    """A user's repository (work tree + bare remote) and an agent watching the remote."""

    def __init__(self, sandbox, tmp_path: Path) -> None:
        self.sandbox = sandbox
        self.remote = git.Repo.init(tmp_path / "origin.git", bare=True, initial_branch="main")
        self.work = git.Repo.clone_from(self.remote.git_dir, tmp_path / "work")
        with self.work.config_writer() as cw:
            cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
        self.root = Path(self.work.working_dir)
        shutil.copytree(EXAMPLE, self.root, dirs_exist_ok=True)
        self.clock = FakeClock(sandbox.simulator.clock.now())
        config = AgentConfig.default()
        config = replace(config, source=replace(config.source, repo=f"file://{self.remote.git_dir}", path=""))
        self.aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        self.agent = Agent(
            config,
            tmp_path / "data",
            self.aws,
            clock=self.clock.now,
            monotonic=self.clock.monotonic,
            pacer=Pacer(limits={}),
        )
        self.ecs = sandbox.client("ecs")

    def commit(self, message: str, edit: dict[str, tuple[str, str]] | None = None) -> str:
        for rel, (old, new) in (edit or {}).items():
            path = self.root / rel
            text = path.read_text()
            assert old in text, f"{old!r} not in {rel}"
            path.write_text(text.replace(old, new))
        self.work.git.add(A=True)
        self.work.index.commit(message)
        self.work.git.push("origin", "main")
        return self.work.head.commit.hexsha

    def revert(self, sha: str) -> str:
        self.work.git.revert(sha, no_edit=True)
        self.work.git.push("origin", "main")
        return self.work.head.commit.hexsha

    def settle(self, max_ticks: int = 60) -> TickResult:
        """Tick, moving the sandbox's clock and the agent's to each wake-up, until nothing is pending."""
        for _ in range(max_ticks):
            result = self.agent.tick()
            assert result is not None
            if result.wake_at is None:
                return result
            step = max(1.0, (result.wake_at - self.clock.now()).total_seconds())
            self.clock.advance(step)
            self.sandbox.simulator.clock.advance(step)
        raise AssertionError("the rollout did not settle")

    def notes(self, sha: str) -> dict:
        """The statuses on ``sha`` as the user sees them in the remote: git notes --ref ecs-gitops show."""
        out = subprocess.run(
            ["git", "notes", "--ref", "ecs-gitops", "show", sha],
            cwd=self.remote.git_dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out)

    def running(self, cluster: str, service: str) -> str:
        svc = self.ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        return svc["taskDefinition"].rsplit("/", 1)[1]

    def revisions(self, family: str) -> list[str]:
        arns = self.ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
        return sorted(a.rsplit("/", 1)[1] for a in arns if a.rsplit("/", 1)[1].split(":")[0] == family)


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
    story.clock.advance(300)
    story.sandbox.simulator.clock.advance(300)
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
    story.clock.advance(timedelta(minutes=5).total_seconds())
    result = story.agent.tick()
    assert result is not None and result.outcome == "unchanged"
    assert story.aws.counter.mutating() == {}
    assert story.notes(sha) == before  # same updatedAt: nothing was written again
