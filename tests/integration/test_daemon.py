"""The daemon's scheduling: one tick at a time, a commit to a local repository triggers a tick at once,
and a rollout's wake-up time brings the next tick forward of the poll interval."""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import replace
from pathlib import Path

import git
import pytest

from agent.aws.clients import Aws
from agent.aws.observing import current_task_definition
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.heap import YOUNG_GENERATION
from agent.sandbox.faults import Fault
from agent.sandbox.harness import EXAMPLE, copy_example
from agent.status.gitnotes import GitNotesPublisher


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    repo = git.Repo.init(tmp_path / "deployments", initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
    copy_example(Path(repo.working_dir))  # the daemon runs on the real clock: no year-end freeze
    return repo


def _agent(sandbox, repo: git.Repo, tmp_path: Path, interval: str = "60s") -> Agent:
    sandbox.reset()
    sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
    sandbox.simulator.task_start_seconds = 0.2
    config = AgentConfig.default()
    config = replace(config, source=replace(config.source, repo=repo.working_dir, interval=interval))
    return Agent(config, tmp_path / "data", Aws(region=sandbox.region, endpoint_url=sandbox.endpoint))


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_tick_asked_for_while_one_runs_waits_and_runs_once_after(sandbox, repo, tmp_path) -> None:
    """A second tick never runs alongside the first: it returns at once and the first tick runs once more."""
    repo.git.add(A=True)
    repo.index.commit("deploy")
    agent = _agent(sandbox, repo, tmp_path)
    sandbox.faults.add(Fault("DescribeClusters", action="hold", count=1))
    first: list = []
    runner = threading.Thread(target=lambda: first.append(agent.tick()))
    runner.start()
    _wait_for(lambda: sandbox.faults.held == 1, 30, "the first tick to reach DescribeClusters")
    assert agent.tick() is None  # refused while the first runs
    sandbox.faults.clear()
    runner.join(timeout=60)
    assert first and first[0] is not None
    # The held call failed (503 after release) and was retried by botocore; then the tick ran again.
    assert agent.aws.counter.counts["ecs.DescribeClusters"] == 2


def test_a_commit_to_a_local_repository_is_deployed_without_waiting_for_the_poll(
    sandbox, repo, tmp_path
) -> None:
    """With a 60 s poll interval, the watchfiles trigger starts a tick for a new commit within seconds, and
    the rollout's wake-up ticks (not the poll) carry it to success."""
    agent = _agent(sandbox, repo, tmp_path, interval="60s")
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    try:
        repo.git.add(A=True)
        sha = repo.index.commit("deploy").hexsha
        committed = time.monotonic()
        _wait_for(lambda: agent.aws.counter.mutating(), 5, "the first mutating call after the commit")
        reacted = time.monotonic() - committed
        notes = GitNotesPublisher(repo.working_dir, push=False)
        _wait_for(
            lambda: notes.read(sha).get("ecs-gitops", {}).get("state") == "success",
            30,
            "the aggregate status to turn success",
        )
    finally:
        stop.set()
        runner.join(timeout=30)
    assert reacted < 5  # well inside the 60 s poll interval


def test_run_plans_pull_request_heads_without_deploying_them(sandbox, repo, tmp_path) -> None:
    """With source.planRefs, the daemon plans a pull-request head after its tick: the head gets the
    ecs-gitops/plan status, and only the branch is deployed."""
    repo.git.add(A=True)
    deployed = repo.index.commit("deploy").hexsha
    repo.git.checkout("-b", "feature")
    web = Path(repo.working_dir) / "taskdefs" / "web.json"
    web.write_text(web.read_text().replace("nginx:1.27", "nginx:1.28"))
    repo.git.add(A=True)
    head = repo.index.commit("web 1.28").hexsha
    repo.git.update_ref("refs/pull/5/head", head)
    repo.git.checkout("main")
    agent = _agent(sandbox, repo, tmp_path)
    agent.config = replace(agent.config, source=replace(agent.config.source, plan_refs=("refs/pull/*/head",)))
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    notes = GitNotesPublisher(repo.working_dir, push=False)
    try:
        _wait_for(lambda: "ecs-gitops/plan" in notes.read(head), 60, "the plan status on the head")
        _wait_for(
            lambda: notes.read(deployed).get("ecs-gitops", {}).get("state") == "success",
            60,
            "the branch to be deployed",
        )
    finally:
        stop.set()
        runner.join(timeout=30)
    plan = notes.read(head)["ecs-gitops/plan"]
    # planned after the first tick: web (waiting for api) may or may not exist yet
    assert plan["state"] == "success"
    assert plan["description"] in ("1 service changes: web created", "1 service changes: web image 1.27→1.28")
    assert "ecs-gitops" not in notes.read(head)  # planned, never deployed
    ecs = agent.aws.client("ecs")
    running = current_task_definition(ecs.describe_services(cluster="prod", services=["web"])["services"][0])
    images = [
        c["image"]
        for c in ecs.describe_task_definition(taskDefinition=running)["taskDefinition"][
            "containerDefinitions"
        ]
    ]
    assert images == ["public.ecr.aws/nginx/nginx:1.27"]


def test_the_first_tick_freezes_the_heap_and_spaces_young_collections(sandbox, repo, tmp_path) -> None:
    """After its first tick the daemon has frozen the heap and collects the young generation every
    YOUNG_GENERATION allocations instead of 700; a one-shot command (heap_frozen set) changes neither."""
    repo.git.add(A=True)
    repo.index.commit("deploy")
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, before[1], before[2])
        one_shot = _agent(sandbox, repo, tmp_path / "one-shot")
        one_shot.heap_frozen = True  # what `apply` and `plan` do
        assert one_shot.tick() is not None
        assert gc.get_threshold()[0] == 700
        agent = _agent(sandbox, repo, tmp_path / "daemon")
        assert agent.tick() is not None
        assert agent.heap_frozen and gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_GENERATION, before[1], before[2])
    finally:
        gc.set_threshold(*before)


def _git_children() -> list[str]:
    """Command lines of this process's child processes that run git."""
    import os

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and cmdline.startswith("git "):
            found.append(cmdline.strip())
    return found


def test_ticks_leave_no_git_process_behind_even_without_the_collector(sandbox, repo, tmp_path) -> None:
    """Each tick reads the commit's manifests through the same repository object, so ten ticks with the
    cyclic collector off start no git process beyond those the first two started (the clone's and the
    trees' ``git cat-file``, each started once)."""
    repo.git.add(A=True)
    repo.index.commit("deploy")
    agent = _agent(sandbox, repo, tmp_path)
    agent.heap_frozen = True  # no freeze: this test turns the collector off itself
    assert agent.tick() is not None
    gc.disable()
    try:
        assert agent.tick() is not None
        after_first = len(_git_children())
        counts = []
        for _ in range(10):
            assert agent.tick() is not None
            counts.append(len(_git_children()))
        assert counts == [after_first] * 10, (after_first, counts)
    finally:
        gc.enable()
        agent.source.close()
