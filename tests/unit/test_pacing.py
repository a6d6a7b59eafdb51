"""Token buckets at ECS's limits, on a fake clock: bursts, refill, reservations across threads, config."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.aws.pacing import ECS_LIMITS, Pacer, TokenBucket, limits_from
from agent.config import AgentConfig, load_config
from agent.errors import InvalidInput
from agent.sandbox.harness import FakeClock


def test_fifty_registrations_take_thirty_seconds_after_a_burst_of_twenty() -> None:
    """RegisterTaskDefinition: 20 at once, then one per second, so 50 calls end 30 fake seconds later."""
    clock = FakeClock()
    pacer = Pacer(clock=clock.monotonic, sleep=clock.sleep)
    start = clock.monotonic()
    at = []
    for _ in range(50):
        pacer.acquire("RegisterTaskDefinition")
        at.append(clock.monotonic() - start)
    assert at[:20] == [0.0] * 20
    assert at[20:] == [float(s) for s in range(1, 31)]
    assert pacer.waited == 30


def test_update_service_refills_five_per_second() -> None:
    """After its burst of 50, UpdateService gets 5 calls per second; a quiet minute refills the burst."""
    clock = FakeClock()
    pacer = Pacer(clock=clock.monotonic, sleep=clock.sleep)
    start = clock.monotonic()
    for _ in range(60):
        pacer.acquire("UpdateService")
    assert clock.monotonic() - start == pytest.approx(2.0)  # 10 calls beyond the burst at 5/s
    clock.advance(60)
    before = clock.monotonic()
    for _ in range(50):
        pacer.acquire("UpdateService")
    assert clock.monotonic() == before


def test_operations_without_a_limit_never_wait() -> None:
    """DescribeClusters has no bucket; an empty limits dict lifts pacing entirely (the sandbox)."""
    clock = FakeClock()
    paced = Pacer(clock=clock.monotonic, sleep=clock.sleep)
    for _ in range(500):
        paced.acquire("DescribeClusters")
    assert paced.waited == 0
    unlimited = Pacer({}, clock.monotonic, clock.sleep)
    for _ in range(500):
        unlimited.acquire("RegisterTaskDefinition")
        unlimited.acquire("DescribeTaskDefinition")
        unlimited.acquire("ListTaskDefinitions")
    assert unlimited.waited == 0


def test_task_definition_reads_share_one_bucket_of_fifty_then_twenty_per_second() -> None:
    """DescribeTaskDefinition and ListTaskDefinitions take from one bucket (ECS's "task definition read
    actions"): 30 of each, 60 in all, end half a second after the burst of 50 (10 at 20 per second)."""
    clock = FakeClock()
    pacer = Pacer(clock=clock.monotonic, sleep=clock.sleep)
    start = clock.monotonic()
    for _ in range(30):
        pacer.acquire("ListTaskDefinitions")
        pacer.acquire("DescribeTaskDefinition")
    assert clock.monotonic() - start == pytest.approx(0.5)
    assert ECS_LIMITS["DescribeTaskDefinition"] == (50, 20)


def test_threads_asking_at_once_reserve_distinct_slots() -> None:
    """40 threads take RegisterTaskDefinition tokens at the same fake instant: 20 go at once and the
    others are told to wait 1, 2, ... 20 s, so together they never exceed one call per second."""
    clock = FakeClock()
    waits: list[float] = []
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    pacer = Pacer(clock=clock.monotonic, sleep=sleep)
    start = threading.Barrier(40)

    def call() -> None:
        start.wait(timeout=30)
        pacer.acquire("RegisterTaskDefinition")

    threads = [threading.Thread(target=call) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(waits) == [float(s) for s in range(1, 21)]
    assert pacer.waited == sum(range(1, 21))


def test_token_bucket_never_holds_more_than_its_burst() -> None:
    """A long idle period refills to the burst, not beyond."""
    bucket = TokenBucket(capacity=3, rate=1, updated=0.0)
    assert [bucket.take(1000.0) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]


def test_limits_default_to_ecs_and_follow_the_agent_config(tmp_path: Path) -> None:
    """Without a pacing section the limits are ECS's; the config (file or ECS_GITOPS_PACING_*) changes
    one bucket and the rollout concurrency."""
    assert limits_from(AgentConfig.default().pacing) == ECS_LIMITS
    assert limits_from(None) == ECS_LIMITS
    path = tmp_path / "agent.yaml"
    path.write_text(
        "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"
        "pacing: {concurrency: 16, registerTaskDefinition: {burst: 40, perSecond: 2},\n"
        "  describeTaskDefinition: {burst: 5, perSecond: 1}}\n"
    )
    config = load_config(str(path), {"ECS_GITOPS_PACING_UPDATE_SERVICE_PER_SECOND": "0.5"})
    assert config.pacing.concurrency == 16
    limits = limits_from(config.pacing)
    assert limits["RegisterTaskDefinition"] == (40, 2)
    assert limits["UpdateService"] == (50, 0.5)
    assert limits["DescribeServices"] == ECS_LIMITS["DescribeServices"]
    assert limits["DescribeTaskDefinition"] == (5, 1)

    clock = FakeClock()
    pacer = Pacer.from_config(config, clock=clock.monotonic, sleep=clock.sleep)
    for _ in range(42):
        pacer.acquire("RegisterTaskDefinition")
    assert pacer.waited == 1.0  # 40 at once, then 2 per second
    for _ in range(3):
        pacer.acquire("DescribeTaskDefinition")
    for _ in range(3):
        pacer.acquire("ListTaskDefinitions")  # the same bucket: 5 at once, then 1 per second
    assert pacer.waited == 2.0


def test_pacing_config_is_validated(tmp_path: Path) -> None:
    """A zero rate or an unknown operation is reported with its JSON pointer."""
    path = tmp_path / "agent.yaml"
    path.write_text(
        "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"
        "pacing: {concurrency: 0, updateService: {perSecond: 0}, deleteService: {burst: 1}}\n"
    )
    with pytest.raises(InvalidInput) as caught:
        load_config(str(path), {})
    pointers = {p.pointer for p in caught.value.problems}
    assert {"/pacing/concurrency", "/pacing/updateService/perSecond"} <= pointers
    assert any("deleteService" in p.message or "deleteService" in p.pointer for p in caught.value.problems)
