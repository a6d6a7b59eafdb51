"""The daemon under load: ticks that outlast the poll interval (a slow AWS endpoint) still let a webhook,
the tick lock and a stop in; replayed webhooks cause one tick; a huge pull request does not delay the
branch. Every wait polls with a deadline; orderings are asserted from recorded tick spans."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import git
import pytest

from agent.aws.clients import Aws
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.errors import Interrupted
from agent.git.source import GitSource
from agent.http.server import github_signature
from agent.reconcile.scheduling import pause_after
from agent.sandbox.faults import Fault
from agent.sandbox.harness import EXAMPLE, copy_example

SECRET = "load-test-secret"
PUSH_MAIN = json.dumps({"ref": "refs/heads/main"}).encode()
SLOW = 2.0  # seconds the sandbox delays each DescribeClusters: a tick lasts longer than the 1 s interval


@pytest.fixture
def repo(tmp_path: Path) -> git.Repo:
    repo = git.Repo.init(tmp_path / "deployments", initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Dev").set_value("user", "email", "dev@example.com")
    copy_example(Path(repo.working_dir))
    repo.git.add(A=True)
    repo.index.commit("deploy")
    return repo


class _Polled(GitSource):
    """The source as for a remote repository: no file watcher, so only polls and webhooks ask for ticks."""

    local_path = property(lambda self: None)  # type: ignore[assignment]


def _agent(sandbox: Any, repo: git.Repo, tmp_path: Path, interval: str) -> Agent:
    sandbox.reset()
    sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
    sandbox.simulator.task_start_seconds = 0.2
    config = AgentConfig.default()
    config = replace(config, source=replace(config.source, repo=repo.working_dir, interval=interval))
    agent = Agent(config, tmp_path / "data", Aws(region=sandbox.region, endpoint_url=sandbox.endpoint))
    agent.source.__class__ = _Polled
    return agent


class _Spans:
    """Records each tick's (start, end, sha reconciled) by wrapping the agent's reconcile step."""

    def __init__(self, agent: Agent) -> None:
        self.starts: list[float] = []
        self.spans: list[tuple[float, float, str | None]] = []
        self.interrupted: list[bool] = []  # per span: the tick stopped reading for a newer event
        original = agent._reconcile

        def timed(ref: str | None) -> Any:
            self.starts.append(time.monotonic())
            result = None
            stopped = False
            try:
                result = original(ref)
                return result
            except Interrupted:
                stopped = True
                raise
            finally:
                self.interrupted.append(stopped)
                self.spans.append((self.starts[-1], time.monotonic(), getattr(result, "sha", None)))

        agent._reconcile = timed  # type: ignore[method-assign]

    @property
    def running(self) -> bool:
        return len(self.starts) > len(self.spans)

    @property
    def longest(self) -> float:
        return max(end - start for start, end, _ in self.spans)


def _wait_for(predicate: Any, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _push(delivery: str) -> dict[str, str]:
    return {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
        "X-Hub-Signature-256": github_signature(SECRET, PUSH_MAIN),
    }


def test_ticks_longer_than_the_interval_let_a_webhook_the_lock_and_a_stop_in(
    sandbox: Any, repo: git.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interval 1 s, ticks over 2 s: each is an overrun (metric, /readyz body); the next tick starts a
    pause after the last, never at once; the tick lock is free between ticks; a commit pushed while a
    tick runs is reconciled by the very next tick (at once when the push interrupted a tick that was only
    reading); a stop ends run() after the tick in progress."""
    monkeypatch.setenv("ECS_GITOPS_WEBHOOK_SECRET", SECRET)
    agent = _agent(sandbox, repo, tmp_path, interval="1s")
    sandbox.faults.add(Fault("DescribeClusters", action="delay", seconds=SLOW))
    spans = _Spans(agent)
    server = agent.serve(port=0)
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    try:
        _wait_for(lambda: len(spans.spans) >= 2, "two ticks")
        _wait_for(lambda: agent.metrics.tick_overruns._value.get() >= 2, "two overruns counted")
        with urllib.request.urlopen(server.url + "/readyz", timeout=10) as response:
            body = json.loads(response.read())
        assert body["ticksOutlastInterval"] is True and body["tickOverruns"] >= 2, body
        assert "outlast the 1s poll interval" in body["reason"]

        # The lock is free between ticks: a waiter gets it within one tick.
        asked = time.monotonic()
        assert agent._lock.acquire(timeout=spans.longest * 2 + 5), "the tick lock was never free"
        got = time.monotonic() - asked
        agent._lock.release()
        assert got <= spans.longest + 2

        # A push while a tick runs (past its fetch, in the slow call): the next tick reconciles it.
        _wait_for(
            lambda: spans.running and time.monotonic() - spans.starts[-1] > 0.5, "a tick past its fetch"
        )
        (Path(repo.working_dir) / "README.md").write_text("a new commit\n")
        repo.git.add(A=True)
        sha = repo.index.commit("docs").hexsha
        pushed = time.monotonic()
        assert _post(server.url + "/webhook/github", PUSH_MAIN, _push("d-1")) == (200, {"triggered": True})
        _wait_for(lambda: any(s == sha for _, _, s in spans.spans), "the pushed commit's tick")
        after = [span for span in spans.spans if span[0] > pushed]
        assert after[0][2] == sha  # the first tick that started after the push reconciled it
        assert after[0][0] - pushed <= spans.longest + pause_after(spans.longest) + 1

        # A stop during a tick: run() returns when that tick ends, and no other tick starts.
        _wait_for(lambda: spans.running, "a tick in progress")
        started = len(spans.starts)
        stopped = time.monotonic()
        stop.set()
        runner.join(timeout=spans.longest * 2 + 10)
        assert not runner.is_alive()
        assert time.monotonic() - stopped <= spans.longest + 5
        assert len(spans.starts) == started
    finally:
        stop.set()
        sandbox.faults.clear()
        runner.join(timeout=60)
    # Never back to back, except after the tick the push interrupted (it was only reading).
    assert sum(spans.interrupted) <= 1
    gaps = [
        b[0] - a[1]
        for a, b, stopped in zip(spans.spans, spans.spans[1:], spans.interrupted, strict=False)
        if not stopped
    ]
    assert all(gap >= pause_after(SLOW) - 0.05 for gap in gaps), gaps


def test_sigterm_stops_ecs_gitops_run_within_one_tick(sandbox: Any, repo: git.Repo, tmp_path: Path) -> None:
    """The real `ecs-gitops run`, interval 1 s against ticks over 2 s: SIGTERM during a tick ends the
    process once that tick is done, without starting another."""
    sandbox.reset()
    sandbox.seed(EXAMPLE / "sandbox-seed.yaml")
    sandbox.faults.add(Fault("DescribeClusters", action="delay", seconds=SLOW))
    console = Path(sys.executable).parent / "ecs-gitops"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_GITOPS_"))}
    env.update(
        ECS_GITOPS_SOURCE_REPO=f"file://{repo.working_dir}",
        ECS_GITOPS_SOURCE_INTERVAL="1s",
        ECS_GITOPS_STATUS_PUBLISHER="log",
        ECS_GITOPS_SERVER_PORT=str(_free_port()),
        ECS_GITOPS_SERVER_HOST="127.0.0.1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    cmd = [str(console), "run", "--data-dir", str(tmp_path / "data"), "--endpoint-url", sandbox.endpoint,
           "--region", sandbox.region]  # fmt: skip
    log_path = tmp_path / "agent.log"
    before = sandbox.faults.describe()["served"].get("DescribeClusters", 0)

    def served() -> int:  # DescribeClusters requests this agent made: about one per tick
        return int(sandbox.faults.describe()["served"].get("DescribeClusters", 0)) - before

    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        try:
            _wait_for(lambda: served() >= 2, "two ticks of the agent", timeout=120)
        except AssertionError as e:
            raise AssertionError(log_path.read_text(errors="replace")[-3000:]) from e
        _wait_for(lambda: proc.poll() is None and served() >= 3, "a third tick to start", timeout=60)
        ticks = served()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # raises if SIGTERM did not stop it
        took = time.monotonic() - sent
    finally:
        sandbox.faults.clear()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = log_path.read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "agent.stopped" in text
    assert served() - ticks <= 1, text[-3000:]  # the tick in progress may read once more; no new tick
    assert took <= 3 * SLOW + 10, took


def test_replayed_webhooks_cause_one_tick_and_pushes_during_a_tick_one_follow_up(
    sandbox: Any, repo: git.Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 replays of one signed push (one delivery ID) trigger once: one tick. 300 distinct pushes while a
    tick runs coalesce: that tick, then one follow-up."""
    monkeypatch.setenv("ECS_GITOPS_WEBHOOK_SECRET", SECRET)
    agent = _agent(sandbox, repo, tmp_path, interval="1h")
    spans = _Spans(agent)
    url = agent.serve(port=0).url + "/webhook/github"
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    try:
        _wait_for(lambda: len(spans.spans) == 1 and agent._loop is not None and agent._loop.idle, "tick 1")
        answers = [_post(url, PUSH_MAIN, _push("replayed"))[1] for _ in range(300)]
        assert sum(a["triggered"] for a in answers) == 1
        assert answers[-1]["reason"] == "this delivery was received already"
        _wait_for(lambda: len(spans.spans) == 2 and agent._loop.idle, "the one tick the replays asked for")

        sandbox.faults.add(Fault("DescribeClusters", action="hold", count=1))
        assert _post(url, PUSH_MAIN, _push("first"))[1] == {"triggered": True}
        _wait_for(lambda: sandbox.faults.held == 1, "the tick to be held inside DescribeClusters")
        for i in range(300):
            assert _post(url, PUSH_MAIN, _push(f"during-{i}"))[1] == {"triggered": True}
        sandbox.faults.clear()
        _wait_for(lambda: len(spans.spans) >= 4 and agent._loop.idle, "the held tick and its follow-up")
        assert len(spans.spans) == 4  # tick 1, the replays' tick, the held tick, one follow-up
    finally:
        sandbox.faults.clear()
        stop.set()
        runner.join(timeout=60)


def test_a_huge_pull_request_does_not_delay_the_branch(sandbox: Any, repo: git.Repo, tmp_path: Path) -> None:
    """A planRefs head of 4 files of 50,000 empty YAML documents each: while its plan runs (held at its
    start here, so the order is certain), the branch's next commit is fetched, reconciled and reported;
    the pull request's plan then finishes."""
    root = Path(repo.working_dir)
    repo.git.checkout("-b", "huge")
    for i in range(4):
        (root / f"huge-{i}.yaml").write_text("---\n" * 50_000)
    repo.git.add(A=True)
    head = repo.index.commit("huge").hexsha
    repo.git.update_ref("refs/pull/7/head", head)
    repo.git.checkout("main")
    agent = _agent(sandbox, repo, tmp_path, interval="1h")
    agent.config = replace(agent.config, source=replace(agent.config.source, plan_refs=("refs/pull/*/head",)))
    planning, gate = threading.Event(), threading.Event()
    plan = agent.previewer.plan

    def gated(tree: Any) -> Any:
        planning.set()
        gate.wait(120)
        return plan(tree)

    agent.previewer.plan = gated
    spans = _Spans(agent)
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    try:
        assert planning.wait(120), "the pull request was never planned"
        (root / "README.md").write_text("the branch moves on\n")
        repo.git.add(A=True)
        sha = repo.index.commit("docs").hexsha
        agent.trigger_now()
        _wait_for(
            lambda: any(s == sha for _, _, s in spans.spans), "the branch's next commit to be reconciled"
        )
        assert agent.store.get(f"plan/{head}") is None  # the pull request's plan has not finished
        assert agent.last_result is not None and agent.last_result.sha == sha
        gate.set()
        _wait_for(lambda: agent.store.get(f"plan/{head}") is not None, "the pull request's plan", timeout=300)
    finally:
        gate.set()
        stop.set()
        runner.join(timeout=120)
