"""Faults from outside the agent: AWS throttling and 5xx, a Git remote down or slow, a Git-host API
answering 5xx or timing out. The rollout reaches the desired state anyway and no status is lost."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import git
import pytest
from gitops_story import Story

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.errors import TransientError
from agent.git.source import GitSource
from agent.sandbox.client_faults import AwsFaults, GitRemoteFaults
from agent.sandbox.git_hosts import FakeGitHost
from agent.sandbox.harness import FakeClock
from agent.status.github import GitHubPublisher

N = 50
CLUSTER = "faults"
WORKER_TD = "taskdefs/worker.yaml"


class Fleet:
    """A local repository of N services (one family each) and an agent reconciling it on the sim sandbox."""

    def __init__(self, sandbox: Any, root: Path, n: int) -> None:
        self.sandbox, self.root, self.n = sandbox, root, n
        self.repo = git.Repo.init(root / "repo", initial_branch="main")
        with self.repo.config_writer() as cw:
            cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
        work = Path(self.repo.working_dir)
        (work / "cluster.yaml").write_text(
            f"apiVersion: ecs-gitops/v1\nkind: Cluster\nmetadata: {{name: {CLUSTER}}}\nspec: {{}}\n"
        )
        (work / "services.yaml").write_text(
            "---\n".join(
                "apiVersion: ecs-gitops/v1\nkind: Service\n"
                f"metadata: {{name: f{i:02d}}}\n"
                f"spec: {{cluster: {CLUSTER}, taskDefinition: taskdefs/f{i:02d}.json, desiredCount: 1, "
                "launchType: EC2}\n"
                for i in range(n)
            )
        )
        self.bump("1")
        self.clock = FakeClock(sandbox.simulator.clock.now())
        config = AgentConfig.default()
        config = replace(
            config,
            source=replace(config.source, repo=str(work)),
            status=replace(config.status, publisher="log"),
        )
        self.aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        self.agent = Agent(
            config, root / "data", self.aws, clock=self.clock.now, monotonic=self.clock.monotonic,
            pacer=Pacer(limits={}),
        )  # fmt: skip

    def bump(self, tag: str) -> str:
        work = Path(self.repo.working_dir)
        (work / "taskdefs").mkdir(exist_ok=True)
        for i in range(self.n):
            body = {
                "family": f"f{i:02d}", "networkMode": "bridge", "requiresCompatibilities": ["EC2"],
                "containerDefinitions": [{"name": "app", "image": f"repo/f:{tag}", "memory": 128}],
            }  # fmt: skip
            (work / "taskdefs" / f"f{i:02d}.json").write_text(json.dumps(body))
        self.repo.git.add(A=True)
        return str(self.repo.index.commit(f"image {tag}").hexsha)

    def settle(self, max_ticks: int = 40) -> Any:
        """Tick (a tick cut short by a transient error is simply retried), moving both clocks to each
        wake-up, until every service is reported deployed."""
        for _ in range(max_ticks):
            result = self.agent.tick()
            if result is not None and result.wake_at is None:
                return result
            wait = 5.0 if result is None else (result.wake_at - self.clock.now()).total_seconds()
            self.clock.advance(max(1.0, wait))
            self.sandbox.simulator.clock.advance(max(1.0, wait))
        raise AssertionError("the rollout did not settle")

    def running(self) -> dict[str, str]:
        ecs = self.sandbox.client("ecs")
        names = [f"f{i:02d}" for i in range(self.n)]
        out = {}
        for start in range(0, self.n, 10):
            for svc in ecs.describe_services(cluster=CLUSTER, services=names[start : start + 10])["services"]:
                out[svc["serviceName"]] = svc["taskDefinition"].rsplit("/", 1)[1]
        return out

    def revisions(self) -> dict[str, int]:
        ecs = self.sandbox.client("ecs")
        counts: dict[str, int] = {}
        for page in ecs.get_paginator("list_task_definitions").paginate():
            for arn in page["taskDefinitionArns"]:
                family = arn.rsplit("/", 1)[1].split(":")[0]
                if re.fullmatch(r"f\d\d", family):
                    counts[family] = counts.get(family, 0) + 1
        return counts


def test_fifty_services_reach_the_desired_state_with_a_fifth_of_aws_calls_failing(
    sim_sandbox: Any, tmp_path: Path
) -> None:
    """With 20 % of the agent's AWS requests failing (throttling and 5xx, seeded), one commit still rolls
    a new image out to 50 services: each runs its new revision, registered exactly once, and the commit
    is reported deployed. Retries and the time against a fault-free rollout are printed (not asserted)."""
    fleet = Fleet(sim_sandbox, tmp_path, N)
    fleet.settle()  # creates the cluster and 50 services at image 1

    fleet.bump("2")
    started = time.perf_counter()
    fleet.settle()
    fault_free = time.perf_counter() - started
    assert fleet.running() == {f"f{i:02d}": f"f{i:02d}:2" for i in range(N)}

    faults = AwsFaults(rate=0.2, seed=6, kinds=("throttle", "5xx")).install(fleet.aws)
    fleet.bump("3")
    calls_before = fleet.aws.counter.total()
    started = time.perf_counter()
    result = fleet.settle()
    faulty = time.perf_counter() - started
    faults.enabled = False

    assert fleet.running() == {f"f{i:02d}": f"f{i:02d}:3" for i in range(N)}
    assert fleet.revisions() == {f"f{i:02d}": 3 for i in range(N)}  # no duplicate registration
    assert result.statuses["ecs-gitops"].state == "success"
    assert result.statuses["ecs-gitops"].description == f"{N} services deployed"
    summary = faults.summary()
    assert sum(summary["injected"].values()) > 0.1 * summary["attempts"]  # the faults really happened
    assert set(summary["injected"]) == {"throttle", "5xx"}
    print(
        f"\n{N} services, 20 % of AWS requests failing: {summary['attempts']} requests for "
        f"{fleet.aws.counter.total() - calls_before} calls, injected {summary['injected']}, "
        f"{summary['retries']} botocore retries, {summary['failed_calls']} calls failed after every "
        f"attempt; rollout {faulty:.1f} s against {fault_free:.1f} s fault-free "
        f"(ratio {faulty / fault_free:.2f})"
    )


# -- a Git remote that is down or slow ---------------------------------------------------------------


def test_a_down_git_remote_neither_stops_a_rollout_nor_loses_its_statuses(
    sim_sandbox: Any, tmp_path: Path
) -> None:
    """With the remote down mid-rollout the agent finishes the rollout of the last commit it fetched; the
    final statuses wait in the state store, survive a restart, and reach the remote once it is back."""
    story = Story(sim_sandbox, tmp_path)
    story.commit("deploy manifests-example")
    story.settle()
    bump = story.commit("worker 1.9.1", {WORKER_TD: ("worker:1.9.0", "worker:1.9.1")})
    first = story.agent.tick()
    assert first is not None and first.statuses["ecs-gitops/prod/worker"].state == "pending"

    faults = GitRemoteFaults(tmp_path / "faults").install(story.agent.source.clone_path)
    faults.down()
    result = story.settle()
    assert result.sha == bump and result.statuses["ecs-gitops/prod/worker"].state == "success"
    assert story.running("prod", "worker") == "worker:2"
    assert story.notes(bump)["ecs-gitops/prod/worker"]["state"] == "pending"  # success not written yet
    waiting = {(s.context, s.state) for s in story.agent.outbox.pending()}
    assert ("ecs-gitops/prod/worker", "success") in waiting
    assert faults.hits("fetch") > 0  # the source and the notes publisher both found it down

    restarted = story.new_agent()  # the process dies while the remote is still down
    assert restarted.tick() is not None
    assert {(s.context, s.state) for s in restarted.outbox.pending()} == waiting

    faults.clear()
    story.advance(301)  # past the longest backoff
    restarted.tick()
    notes = story.notes(bump)
    assert {ctx: notes[ctx]["state"] for ctx, _ in waiting} == dict(waiting)
    assert restarted.outbox.pending() == [] and restarted.store.items("outbox/") == []


def test_a_slow_git_remote_is_only_slower_until_it_exceeds_the_timeout(tmp_path: Path) -> None:
    """A remote that answers late is waited for; one slower than the git timeout is a transient error
    that names the timeout, and the next fetch works once it is back."""
    remote = git.Repo.init(tmp_path / "remote", initial_branch="main")
    (Path(remote.working_dir) / "README.md").write_text("hello\n")
    remote.git.add(A=True)
    remote.git.commit("-m", "one", "--author", "Dev <dev@example.com>")
    source = GitSource(f"file://{remote.working_dir}", "main", workdir=tmp_path / "clone", timeout=2.0)
    source.prepare()
    faults = GitRemoteFaults(tmp_path / "faults").install(source.clone_path)

    faults.slow(0.5)
    assert source.fetch().sha == remote.head.commit.hexsha
    faults.slow(6)
    with pytest.raises(TransientError, match="timed out after 2s"):
        source.fetch()
    faults.clear()
    assert not source.fetch().changed
    source.close()


# -- a Git-host API that answers 5xx or times out -------------------------------------------------------


def test_a_git_host_answering_5xx_or_timing_out_never_stops_a_rollout(
    sim_sandbox: Any, tmp_path: Path
) -> None:
    """Statuses to a GitHub API that answers 503, then hangs past the client's timeout, wait in the
    outbox while the rollout completes; once the host answers, every final status is written."""
    story = Story(sim_sandbox, tmp_path)
    with FakeGitHost() as host:
        story.agent.outbox.publisher = GitHubPublisher(
            "acme/deploy", token="test-token", base_url=host.url, timeout=0.5
        )
        host.set_mode("5xx")
        sha = story.commit("deploy manifests-example")
        result = story.settle()
        assert result.outcome == "unchanged" and result.statuses["ecs-gitops"].state == "success"
        assert story.running("prod", "worker") == "worker:1"
        assert host.statuses == {} and host.requests > 0
        assert len(story.agent.outbox.pending()) == len(result.statuses)

        host.set_mode("hang")
        story.advance(301)
        seen = host.requests
        assert story.agent.outbox.flush() == 0  # one request times out; the others wait for the next flush
        assert host.requests == seen + 1

        host.set_mode("ok")
        story.advance(301)
        assert story.agent.outbox.flush() == len(result.statuses)
        written = {ctx: entry["state"] for ctx, entry in host.statuses[sha].items()}
        assert written == {ctx: status.state for ctx, status in result.statuses.items()}
        assert story.agent.store.items("outbox/") == []
