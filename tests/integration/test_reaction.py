"""How soon the agent acts on a new commit: an ask interrupts a tick that is only reading (never one that
has begun to act), and a commit changing a few services is acted on for those before the rest are read,
gated as in a whole tick, with nothing reported on the commit until the whole tick has run. Orderings are
made certain with the sandbox's holds; every wait polls with a deadline."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import git
import pytest

from agent.aws.clients import Aws
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.git.source import GitSource
from agent.reconcile.focusing import Focus
from agent.sandbox.faults import Fault

N = 12
CLUSTER = "react"


class _Polled(GitSource):
    """The source as for a remote repository: no file watcher, so only the test asks for ticks."""

    local_path = property(lambda self: None)  # type: ignore[assignment]


class _Repo:
    """A git repository of N rolling services in one cluster; svc01 dependsOn svc00."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.git = git.Repo.init(root, initial_branch="main")
        with self.git.config_writer() as cw:
            cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
        (root / "cluster.yaml").write_text(
            f"apiVersion: ecs-gitops/v1\nkind: Cluster\nmetadata: {{name: {CLUSTER}}}\nspec: {{}}\n"
        )
        (root / "taskdefs").mkdir()
        docs = []
        for i in range(N):
            self.image(i, "1")
            depends = ", dependsOn: [svc00]" if i == 1 else ""
            docs.append(
                "apiVersion: ecs-gitops/v1\nkind: Service\n"
                f"metadata: {{name: svc{i:02d}}}\n"
                f"spec: {{cluster: {CLUSTER}, taskDefinition: taskdefs/svc{i:02d}.json, desiredCount: 1, "
                f"launchType: EC2{depends}}}\n"
            )
        (root / "services.yaml").write_text("---\n".join(docs))
        self.commit("deploy")

    def image(self, i: int, tag: str) -> None:
        body = {
            "family": f"svc{i:02d}",
            "networkMode": "bridge",
            "containerDefinitions": [{"name": "app", "image": f"repo/app:{tag}", "memory": 128}],
        }
        (self.root / "taskdefs" / f"svc{i:02d}.json").write_text(json.dumps(body, indent=2))

    def commit(self, message: str) -> str:
        self.git.git.add(A=True)
        return str(self.git.index.commit(message).hexsha)


@pytest.fixture
def repo(tmp_path: Path) -> _Repo:
    return _Repo(tmp_path / "deployments")


def _agent(sandbox: Any, repo: _Repo, tmp_path: Path) -> Agent:
    """An agent polling every hour, with every service deployed."""
    sandbox.reset()
    sandbox.simulator.task_start_seconds = 0.01
    config = AgentConfig.default()
    config = replace(
        config,
        source=replace(config.source, repo=str(repo.root), interval="1h"),
        status=replace(config.status, publisher="log"),
    )
    agent = Agent(config, tmp_path / "data", Aws(region=sandbox.region, endpoint_url=sandbox.endpoint))
    agent.source.__class__ = _Polled
    for _ in range(20):
        result = agent.tick()
        if result is not None and result.wake_at is None:
            assert result.statuses["ecs-gitops"].state == "success", result.statuses["ecs-gitops"]
            return agent
    raise AssertionError("the first commit did not settle")


def _wait_for(predicate: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _statuses(agent: Agent, sha: str) -> dict[str, Any]:
    """The statuses reported on ``sha``, by context."""
    return {key.split("/", 2)[2]: value for key, value in agent.store.items(f"status/{sha}/")}


def _image(sandbox: Any, service: str) -> str:
    ecs = sandbox.client("ecs")
    arn = ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]["taskDefinition"]
    return str(
        ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["containerDefinitions"][0]["image"]
    )


def _running(agent: Agent) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    _wait_for(
        lambda: agent._loop is not None and agent._loop.ticks >= 1 and agent._loop.idle, "the first tick"
    )
    return stop, runner


def test_an_ask_while_a_tick_reads_interrupts_it_and_the_next_tick_acts(
    sandbox: Any, repo: _Repo, tmp_path: Path
) -> None:
    """A tick held inside DescribeServices for commit 1 is interrupted by the ask for commit 2: it reports
    nothing and registers nothing, and the next tick, started at once, deploys commit 2."""
    agent = _agent(sandbox, repo, tmp_path)
    stop, runner = _running(agent)
    try:
        sandbox.faults.add(Fault("DescribeServices", action="hold", count=1))
        repo.image(3, "2")
        first = repo.commit("svc03 2")
        agent.trigger_now()
        _wait_for(lambda: sandbox.faults.held == 1, "the tick to be held inside DescribeServices")
        agent.aws.counter.reset()
        repo.image(3, "3")
        second = repo.commit("svc03 3")
        agent.trigger_now()
        assert agent._loop.interrupting()
        sandbox.faults.clear()
        _wait_for(lambda: "ecs-gitops" in _statuses(agent, second), "the status of commit 2")
        _wait_for(lambda: agent._loop.idle, "the loop to be idle")
        assert agent._loop.interrupted == 1
        assert _statuses(agent, first) == {}  # the interrupted tick reported nothing
        assert agent.aws.counter.counts["ecs.RegisterTaskDefinition"] == 1
        assert _image(sandbox, "svc03") == "repo/app:3"
    finally:
        sandbox.faults.clear()
        stop.set()
        runner.join(timeout=60)


def test_an_ask_while_a_tick_acts_waits_for_it_to_end(sandbox: Any, repo: _Repo, tmp_path: Path) -> None:
    """A tick held inside RegisterTaskDefinition has begun to act: the ask for commit 2 does not interrupt
    it; it reports on commit 1, and the tick after it deploys commit 2."""
    agent = _agent(sandbox, repo, tmp_path)
    stop, runner = _running(agent)
    try:
        sandbox.faults.add(Fault("RegisterTaskDefinition", action="hold", count=1))
        repo.image(3, "2")
        first = repo.commit("svc03 2")
        agent.trigger_now()
        _wait_for(lambda: sandbox.faults.held == 1, "the tick to be held inside RegisterTaskDefinition")
        repo.image(3, "3")
        second = repo.commit("svc03 3")
        agent.trigger_now()
        sandbox.faults.clear()
        _wait_for(lambda: "ecs-gitops" in _statuses(agent, second), "the status of commit 2")
        assert "ecs-gitops" in _statuses(agent, first)  # the tick that acted ran to its end
        assert agent._loop.interrupted == 0
        _wait_for(lambda: _image(sandbox, "svc03") == "repo/app:3", "commit 2 deployed")
    finally:
        sandbox.faults.clear()
        stop.set()
        runner.join(timeout=60)


def test_a_commit_changing_one_service_is_acted_on_before_the_others_are_read(
    sandbox: Any, repo: _Repo, tmp_path: Path
) -> None:
    """svc01 bumped: the first DescribeServices asks for svc01 and svc00 (what it waits for) alone, the
    writes follow it, and nothing is reported on the commit while the whole tick's reads are held; then the
    whole tick reports every service and the aggregate."""
    agent = _agent(sandbox, repo, tmp_path)
    agent.reconciler.focus = Focus(least=N, share=0.25)
    calls: list[tuple[str, tuple[str, ...]]] = []
    agent.aws.register(  # the API's own parameters, once per call
        "provide-client-params.ecs.*",
        lambda model, params, **_: calls.append((model.name, tuple(params.get("services", ())))),
    )
    # The first pass's DescribeServices goes through; the whole tick's first one is held.
    sandbox.faults.add(Fault("DescribeServices", action="hold", count=1, after=1))
    repo.image(1, "2")
    sha = repo.commit("svc01 2")
    results: list[Any] = []
    ticking = threading.Thread(target=lambda: results.append(agent.tick()))
    ticking.start()
    try:
        _wait_for(lambda: sandbox.faults.held == 1, "the whole tick's reads to be held")
        writes = [i for i, (op, _) in enumerate(calls) if not op.startswith(("Describe", "List"))]
        reads = [services for op, services in calls[: writes[0]] if op == "DescribeServices"]
        assert reads == [("svc00", "svc01")]
        assert [calls[i][0] for i in writes] == ["RegisterTaskDefinition", "UpdateService"]
        assert _statuses(agent, sha) == {}  # the first pass reports nothing on the commit
    finally:
        sandbox.faults.clear()
        ticking.join(timeout=120)
    (result,) = results
    assert result.first_pass == (f"{CLUSTER}/svc01",) and result.outcome == "applied"
    assert result.statuses["ecs-gitops"].state in ("pending", "success")
    assert len(result.statuses) == N + 1 and set(_statuses(agent, sha)) == set(result.statuses)
    assert _image(sandbox, "svc01") == "repo/app:2"


def test_the_first_pass_gates_a_service_behind_what_it_depends_on(
    sandbox: Any, repo: _Repo, tmp_path: Path
) -> None:
    """svc00 and svc01 (dependsOn svc00) bumped together: the first pass starts svc00 only, svc01 waits for
    it (in this tick's whole pass or a later tick, once svc00 is done), and the rollout carries both."""
    agent = _agent(sandbox, repo, tmp_path)
    agent.reconciler.focus = Focus(least=N, share=0.25)
    repo.image(0, "2")
    repo.image(1, "2")
    repo.commit("svc00 and svc01 2")
    result = agent.tick()
    assert result is not None and result.first_pass == (f"{CLUSTER}/svc00",)
    assert result.statuses[f"ecs-gitops/{CLUSTER}/svc01"].state == "pending"
    for _ in range(20):
        result = agent.tick()
        if result is not None and result.wake_at is None:
            break
    assert result is not None and result.statuses["ecs-gitops"].state == "success"
    assert _image(sandbox, "svc00") == _image(sandbox, "svc01") == "repo/app:2"
