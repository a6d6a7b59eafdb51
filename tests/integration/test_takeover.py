"""Two replicas on one DynamoDB table: exactly one acts; when it dies mid-rollout the other takes over
within the lease TTL plus one poll interval and finishes the rollout (a rolling one, and a native canary
left paused at the agent's PAUSE hook); the old one is fenced off."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gitops_story import Story
from test_kill_matrix import NATIVE_BASE, _native

from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.daemon import Agent
from agent.errors import PermanentError
from agent.sandbox.client_faults import GitRemoteFaults
from agent.sandbox.harness import write
from agent.store import LeaseLost
from agent.store.dynamodb import create_table

WORKER_TD = "taskdefs/worker.yaml"
TTL, INTERVAL = 30, 60
_tables = itertools.count(1)


class Replicas:
    """A story (remote, work tree, sim sandbox, fake clock) and agents sharing one DynamoDB table."""

    def __init__(self, sandbox: Any, tmp_path: Path, copy_example: bool = True) -> None:
        self.story = Story(sandbox, tmp_path, copy_example=copy_example)
        self.table = f"ecs-gitops-ha-{next(_tables)}"
        create_table(sandbox.client("dynamodb"), self.table)
        self.tmp_path = tmp_path

    def agent(self, owner: str, real_time: bool = False) -> Agent:
        story = self.story
        store = replace(
            story.config.store, type="dynamodb", table=self.table, owner=owner, lease_ttl=f"{TTL}s"
        )
        config = replace(story.config, store=store)
        aws = Aws(region=story.sandbox.region, endpoint_url=story.sandbox.endpoint)
        if real_time:  # Agent.run's scheduler runs on real time
            config = replace(config, server=replace(config.server, port=0))
            return Agent(config, self.tmp_path / f"data-{owner}", aws, pacer=Pacer(limits={}))
        return Agent(
            config, self.tmp_path / f"data-{owner}", aws, clock=story.clock.now,
            monotonic=story.clock.monotonic, pacer=Pacer(limits={}),
        )  # fmt: skip


@pytest.fixture
def replicas(sim_sandbox: Any, tmp_path: Path) -> Replicas:
    return Replicas(sim_sandbox, tmp_path)


def test_the_standby_takes_over_a_dead_leader_mid_rollout_and_finishes_it(replicas: Replicas) -> None:
    """Only the lease holder touches ECS; the standby is ready but idle. When the leader stops renewing
    mid-rollout, the standby leads within TTL + one interval, sends the statuses the leader could not,
    finishes the rollout without registering anything twice; the old leader's writes are refused."""
    story = replicas.story
    a, b = replicas.agent("a"), replicas.agent("b")
    story.commit("deploy manifests-example")
    assert a.tick() is not None and a.leading
    assert b.tick() is None and not b.leading
    ready, body = b.readiness.check()
    assert ready and body["role"] == "standby" and body["leader"]["owner"] == "a"
    assert b.aws.counter.total("ecs.") == 0  # the standby never read ECS, let alone wrote
    story.settle(a)
    assert b.tick() is None and b.aws.counter.total("ecs.") == 0

    # The leader applies a bump, cannot write its statuses (its push fails), then dies.
    bump = story.commit("worker 1.9.1", {WORKER_TD: ("worker:1.9.0", "worker:1.9.1")})
    GitRemoteFaults(replicas.tmp_path / "a-faults").install(a.source.clone_path).down(fetch=False)
    first = a.tick()
    assert first is not None and first.outcome == "applied"
    unsent = {(s.context, s.state) for s in a.outbox.pending()}
    assert ("ecs-gitops/prod/worker", "pending") in unsent
    assert {k.split("/", 2)[2] for k, _ in b.store.items("outbox/")} == {ctx for ctx, _ in unsent}
    died = story.clock.now()

    # The standby polls every interval; the lease (renewed at `died`) expires TTL later.
    while b.tick() is None:
        assert (story.clock.now() - died).total_seconds() <= TTL + INTERVAL, "no takeover in time"
        story.advance(INTERVAL)
    assert b.leading and (story.clock.now() - died).total_seconds() <= TTL + INTERVAL
    assert b.lease.holder() is not None and b.lease.holder()["token"] == 2

    result = story.settle(b)
    assert result.sha == bump and result.statuses["ecs-gitops/prod/worker"].state == "success"
    assert story.running("prod", "worker") == "worker:2"
    assert story.revisions("worker") == ["worker:1", "worker:2"]
    notes = story.notes(bump)
    assert notes["ecs-gitops/prod/worker"]["state"] == "success" and notes["ecs-gitops"]["state"] == "success"
    assert b.store.items("outbox/") == []

    # The old leader comes back (a paused process): any write it still makes is fenced off...
    with pytest.raises(LeaseLost):
        a.store.put("rollout/prod/worker", {"from": "the old leader"})
    # ...and it stands by from then on.
    a.aws.counter.reset()
    assert a.tick() is None and not a.leading and a.outbox.pending() == []
    assert a.aws.counter.total("ecs.") == 0
    ready, body = a.readiness.check()
    assert ready and body["leader"]["owner"] == "b"


class Killed(BaseException):
    """The leader's process ends here: no handler of the agent runs after it (as with SIGKILL)."""


def _newest_service_deployment(story: Story) -> dict[str, Any]:
    briefs = story.ecs.list_service_deployments(cluster="native", service="canary")["serviceDeployments"]
    newest = max(briefs, key=lambda b: b["createdAt"])["serviceDeploymentArn"]
    return dict(
        story.ecs.describe_service_deployments(serviceDeploymentArns=[newest])["serviceDeployments"][0]
    )


def test_the_standby_continues_a_native_canary_its_dead_leader_left_paused_at_the_pause_hook(
    sim_sandbox: Any, tmp_path: Path
) -> None:
    """A native canary (engine ecs) whose PAUSE hook the leader dies in the act of continuing: ECS waits at
    the hook; the standby takes over within TTL + interval, reads the paused deployment from ECS, continues
    it exactly once, and ECS ends SUCCESSFUL; the commit reads pending at every step until ECS says
    SUCCESSFUL, then success."""
    replicas = Replicas(sim_sandbox, tmp_path, copy_example=False)
    story = replicas.story
    for rel, content in {**NATIVE_BASE, "canary.json": _native("repo/canary:1")}.items():
        write(story.root, rel, content)
    story.commit("a native canary service")
    a, b = replicas.agent("a"), replicas.agent("b")
    assert a.tick() is not None and a.leading
    story.settle(a)
    assert b.tick() is None and b.aws.counter.total("ecs.") == 0

    def die(**_: Any) -> None:
        raise Killed("SIGKILL")

    a.aws.register("before-call.ecs.ContinueServiceDeployment", die)
    write(story.root, "canary.json", _native("repo/canary:2"))
    sha = story.commit("canary 2")
    continued = sim_sandbox.faults.served["ContinueServiceDeployment"]
    seen: list[tuple[str, str, str]] = []  # (the commit's status, its description, what ECS says)

    def honest() -> None:
        state, description = (
            story.notes(sha)["ecs-gitops/native/canary"][k] for k in ("state", "description")
        )
        ecs_says = _newest_service_deployment(story)["status"]
        seen.append((state, description, ecs_says))
        assert state == "pending" or (state, ecs_says) == ("success", "SUCCESSFUL"), seen[-1]

    for _ in range(60):  # the leader rolls the canary out until ECS waits at its PAUSE hook
        try:
            result = a.tick()
        except Killed:
            break
        assert result is not None
        honest()
        story.advance(max(1.0, (result.wake_at - story.clock.now()).total_seconds()) if result.wake_at else 5)
    else:
        pytest.fail("the leader never came to continue the deployment")
    died = story.clock.now()
    paused = _newest_service_deployment(story)
    assert paused["status"] == "IN_PROGRESS"
    assert [(h["targetType"], h["status"]) for h in paused["lifecycleHookDetails"]] == [
        ("PAUSE", "AWAITING_ACTION")
    ]
    assert paused["targetServiceRevision"]["requestedProductionTrafficWeight"] == 0.0  # green: no production
    assert sim_sandbox.faults.served["ContinueServiceDeployment"] == continued  # it never reached ECS
    honest()

    continues: list[str] = []  # the hooks the new leader continues, in order
    b.aws.register(
        "provide-client-params.ecs.ContinueServiceDeployment",
        lambda params, **_: continues.append(params["hookId"]),
    )
    while (result := b.tick()) is None:  # the standby leads once the dead leader's lease has expired
        assert (story.clock.now() - died).total_seconds() <= TTL + INTERVAL, "no takeover in time"
        story.advance(INTERVAL)
    assert b.leading and b.lease.holder()["token"] == 2
    for _ in range(60):  # and follows the deployment, read from ECS, to its end
        honest()
        if result.wake_at is None:
            break
        story.advance(max(1.0, (result.wake_at - story.clock.now()).total_seconds()))
        result = b.tick()
        assert result is not None
    assert seen[-1][0] == "success" and seen[-1][2] == "SUCCESSFUL", seen
    assert any(state == "pending" for state, _, _ in seen)
    # The hook the leader died at is continued first, and every hook once (ECS pauses before each
    # production traffic step: 50 %, then 100 %); nothing else reached ECS.
    assert continues[0] == paused["lifecycleHookDetails"][0]["hookId"]
    assert len(continues) == len(set(continues)) == 2
    assert sim_sandbox.faults.served["ContinueServiceDeployment"] == continued + len(continues)
    assert story.running("native", "canary") == "canary:2"
    assert story.revisions("canary") == ["canary:1", "canary:2"]
    assert a.tick() is None and not a.leading  # the old leader, back, stands by


def test_a_leader_that_stops_cleanly_hands_over_at_once(replicas: Replicas) -> None:
    """close() releases the lease, so the standby leads on its next check without waiting for the TTL,
    and the heartbeat of run() makes it tick at once."""
    story = replicas.story
    a, b = replicas.agent("a"), replicas.agent("b")
    story.commit("deploy manifests-example")
    assert a.tick() is not None
    assert b.tick() is None
    a.close()
    ticked: list[bool] = []
    b.trigger_now = lambda: ticked.append(True)  # type: ignore[method-assign]
    b._heartbeat()
    assert b.leading and ticked == [True]
    assert b.tick() is not None
    assert a.tick() is None and not a.leading


def test_only_the_leader_plans_pull_requests(replicas: Replicas) -> None:
    """A standby plans no pull-request head (its writes would be fenced off) and refuses plan --publish,
    naming the leader; the leader plans the head once."""
    story = replicas.story
    a, b = replicas.agent("a"), replicas.agent("b")
    for agent in (a, b):
        agent.config = replace(
            agent.config, source=replace(agent.config.source, plan_refs=("refs/pull/*/head",))
        )
    story.commit("deploy manifests-example")
    story.work.git.push("origin", "HEAD:refs/pull/3/head")
    head = story.work.head.commit.hexsha
    assert a.tick() is not None and b.tick() is None

    b.aws.counter.reset()
    assert b.plan_proposals() == []
    assert not b.aws.counter.counts  # not even planned: nothing read from ECS
    with pytest.raises(PermanentError, match="a holds the leader lease"):
        b.plan_ref("refs/pull/3/head")
    (preview,) = a.plan_proposals()
    assert (preview.sha, preview.status.context) == (head, "ecs-gitops/plan")
    assert a.plan_proposals() == []  # each head once
    assert b.store.get(f"plan/{head}") is not None  # the leader's record, in the shared table


def test_run_renews_the_lease_and_a_stopped_leaders_standby_takes_over_without_a_poll(
    replicas: Replicas,
) -> None:
    """Two Agent.run daemons on real time (lease TTL 3 s, poll 60 s): one leads and keeps its lease beyond
    the TTL by renewing it; when it stops, the other leads through its heartbeat, long before a poll."""
    import threading

    story = replicas.story
    story.commit("deploy manifests-example")
    agents = {owner: replicas.agent(owner, real_time=True) for owner in ("a", "b")}
    for agent in agents.values():
        agent.config = replace(agent.config, store=replace(agent.config.store, lease_ttl="3s"))
    stops = {owner: threading.Event() for owner in agents}
    threads = {
        owner: threading.Thread(target=agent.run, args=(stops[owner],), name=f"replica-{owner}")
        for owner, agent in agents.items()
    }
    for thread in threads.values():
        thread.start()
    try:
        leader = _wait_for(lambda: next((o for o, a in agents.items() if a.leading), None), "a leader")
        standby = "b" if leader == "a" else "a"
        first = agents[leader].lease.holder()
        assert first is not None
        # Past the first lease's expiry, the leader still holds it (same token): only renewals did that.
        renewed = lambda: (agents[leader].lease.holder() or {}).get("expires", 0) > first["expires"] + 3  # noqa: E731
        _wait_for(lambda: renewed() or None, "a renewal after the first lease's expiry")
        assert agents[leader].lease.holder()["token"] == first["token"]
        assert agents[leader].leading and not agents[standby].leading
        assert agents[standby].aws.counter.total("ecs.") == 0
        stopped_at = time.monotonic()
        stops[leader].set()
        threads[leader].join(timeout=60)
        assert not threads[leader].is_alive()  # a tick ending during shutdown did not deadlock it
        _wait_for(lambda: agents[standby].leading or None, "the standby to take over")
        assert time.monotonic() - stopped_at < 30  # the heartbeat, not the 60 s poll
        _wait_for(lambda: agents[standby].aws.counter.total("ecs.") or None, "the new leader to tick")
    finally:
        for stop in stops.values():
            stop.set()
        for thread in threads.values():
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads.values())


def _wait_for(probe: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while (found := probe()) is None:
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found
