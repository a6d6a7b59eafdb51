"""The outbox retries failed status writes with backoff on a fake clock, never raising or sleeping."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.errors import PermanentError, TransientError
from agent.status.model import AGGREGATE, CommitStatus
from agent.status.outbox import Outbox
from agent.store.sqlite import SqliteStore

SHA = "a" * 40


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class FlakyPublisher:
    """Fails with the queued errors first, then records what it is sent."""

    name = "flaky"

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[CommitStatus] = []
        self.sent: list[CommitStatus] = []

    def publish(self, status: CommitStatus) -> None:
        self.calls.append(status)
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append(status)

    def read(self, sha: str) -> dict[str, dict]:
        return {s.context: s.as_entry() for s in self.sent if s.sha == sha}


def _status(state: str = "pending", context: str = AGGREGATE, text: str = "rolling out") -> CommitStatus:
    return CommitStatus(SHA, context, state, text)


def test_failures_back_off_and_retry_later() -> None:
    """A transient failure is retried only once its backoff has passed, with growing delays."""
    clock = Clock()
    publisher = FlakyPublisher(TransientError("502", delay=0), TransientError("timeout", delay=0))
    outbox = Outbox(publisher, clock, base_backoff=2.0, rng=random.Random(1))
    outbox.put(_status())

    with capture_logs() as logs:
        assert outbox.flush() == 0
        first_due = outbox.next_due()
        assert first_due is not None and 2.0 <= first_due - clock.now <= 2.5
        assert outbox.flush() == 0 and len(publisher.calls) == 1  # not due yet: no attempt

        clock.now = first_due
        assert outbox.flush() == 0 and len(publisher.calls) == 2
        second_due = outbox.next_due()
        assert second_due is not None and 4.0 <= second_due - clock.now <= 5.0

        clock.now = second_due
        assert outbox.flush() == 1

    assert outbox.pending() == [] and [s.state for s in publisher.sent] == ["pending"]
    assert [e["event"] for e in logs] == ["status.retry", "status.retry"]
    assert logs[0]["log_level"] == "warning" and logs[0]["error"] == "502"


def test_backoff_honours_the_delay_asked_and_the_cap() -> None:
    """A Retry-After style delay is a floor, and no delay exceeds max_backoff."""
    clock = Clock()
    outbox = Outbox(
        FlakyPublisher(TransientError("429", delay=120), TransientError("429", delay=900)),
        clock,
        max_backoff=300,
        rng=random.Random(2),
    )
    outbox.put(_status())
    outbox.flush()
    due = outbox.next_due()
    assert due is not None and 120 <= due - clock.now <= 150
    clock.now = due
    outbox.flush()
    assert outbox.next_due() == clock.now + 300


def test_newest_status_supersedes_an_unsent_older_one() -> None:
    """Only the newest status per (sha, context) is sent; other contexts are kept."""
    clock = Clock()
    publisher = FlakyPublisher(TransientError("down", delay=0))
    outbox = Outbox(publisher, clock, rng=random.Random(3))
    outbox.put(_status("pending", text="rolling out"))
    outbox.flush()  # fails; backs off
    outbox.put(_status("success", text="rolled out"))
    outbox.put(_status("pending", context="ecs-gitops/prod/web"))

    assert [(s.context, s.state) for s in outbox.pending()] == [
        (AGGREGATE, "success"),
        ("ecs-gitops/prod/web", "pending"),
    ]
    clock.now += 600
    assert outbox.flush() == 2
    assert [(s.context, s.state, s.description) for s in publisher.sent] == [
        (AGGREGATE, "success", "rolled out"),
        ("ecs-gitops/prod/web", "pending", "rolling out"),
    ]


def test_permanent_failure_is_kept_retried_and_counted() -> None:
    """A PermanentError (a bad token) never drops the status: it is logged at error level, counted by
    reason, retried with backoff, and sent once the token works; the others wait behind it meanwhile."""
    clock = Clock()
    error = PermanentError("HTTP 401 Bad credentials")
    error.reason = "auth"  # type: ignore[attr-defined]
    publisher = FlakyPublisher(error)
    outbox = Outbox(publisher, clock, rng=random.Random(5))
    outbox.put(_status("failure", text="web.yaml: /spec/cluster: required"))
    outbox.put(_status("pending", context="ecs-gitops/prod/web"))

    with capture_logs() as logs:
        assert outbox.flush() == 0

    assert [s.context for s in outbox.pending()] == [AGGREGATE, "ecs-gitops/prod/web"]
    assert outbox.failures == {("flaky", "auth"): 1}
    assert outbox.undelivered_for() == 0.0
    (entry,) = logs
    assert entry["event"] == "status.undelivered" and entry["log_level"] == "error"
    assert entry["reason"] == "auth" and entry["error"] == "HTTP 401 Bad credentials"
    clock.now += 30
    assert outbox.undelivered_for() == 30.0
    assert outbox.flush() == 2 and outbox.pending() == [] and outbox.undelivered_for() is None
    assert [s.context for s in publisher.sent] == [AGGREGATE, "ecs-gitops/prod/web"]


def test_statuses_go_out_in_the_order_they_were_last_queued() -> None:
    """A superseded status goes behind the others, so a newer status is never followed by an older one."""
    clock = Clock()
    publisher = FlakyPublisher(TransientError("down", delay=0))
    outbox = Outbox(publisher, clock, rng=random.Random(6))
    outbox.put(_status("pending", context="ecs-gitops/prod/web"))
    outbox.flush()
    outbox.put(_status("pending", context=AGGREGATE))
    outbox.put(_status("success", context="ecs-gitops/prod/web", text="deployed"))
    outbox.put(_status("success", context=AGGREGATE, text="1 services deployed"))
    clock.now += 600
    assert outbox.flush() == 2
    assert [(s.context, s.state) for s in publisher.sent] == [
        ("ecs-gitops/prod/web", "success"),
        (AGGREGATE, "success"),
    ]


def test_target_url_template_is_filled_for_each_status() -> None:
    publisher = FlakyPublisher()
    outbox = Outbox(publisher, Clock(), target_url="https://agent.example/dashboard/?sha={sha}#{service}")
    outbox.put(_status(context="ecs-gitops/prod/web"))
    outbox.put(_status(context=AGGREGATE))
    outbox.flush()
    assert [s.target_url for s in publisher.sent] == [
        f"https://agent.example/dashboard/?sha={SHA}#web",
        f"https://agent.example/dashboard/?sha={SHA}#",
    ]


def test_a_down_host_costs_one_attempt_per_flush() -> None:
    """After a transient failure the other due statuses wait, so a slow host never holds the tick."""
    clock = Clock()
    publisher = FlakyPublisher(TransientError("timed out"), TransientError("timed out"))
    outbox = Outbox(publisher, clock, rng=random.Random(4))
    for i in range(5):
        outbox.put(_status(context=f"ecs-gitops/prod/svc{i}"))

    assert outbox.flush() == 0 and len(publisher.calls) == 1
    assert outbox.flush() == 0 and len(publisher.calls) == 2  # the next one is tried, the first waits
    clock.now += 600
    assert outbox.flush() == 5 and len(outbox.pending()) == 0


def test_flush_never_raises_on_a_publisher_bug() -> None:
    """An unexpected exception from a publisher is logged and retried, never raised into the loop."""
    clock = Clock()
    outbox = Outbox(FlakyPublisher(RuntimeError("boom")), clock)
    outbox.put(_status())
    with capture_logs() as logs:
        assert outbox.flush() == 0
    assert logs[0]["event"] == "status.retry" and logs[0]["error"] == "boom"
    assert len(outbox.pending()) == 1


def test_put_stamps_the_time_of_the_event() -> None:
    """A status is stamped with the outbox clock when queued, not when finally sent."""
    clock = Clock()
    publisher = FlakyPublisher()
    outbox = Outbox(publisher, clock)
    outbox.put(_status())
    clock.now += 3600
    outbox.flush()
    assert publisher.sent[0].updated_at == "2023-11-14T22:13:20Z"


# -- kept in the state store (issue 6) ---------------------------------------------------------------


def _sqlite(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db")


def test_an_unsent_status_survives_a_restart(tmp_path: Path) -> None:
    """A status the host refused stays in the store; a new outbox on that store (a restarted agent)
    restores it and sends it, and sending it removes it from the store."""
    clock = Clock()
    store = _sqlite(tmp_path)
    down = FlakyPublisher(TransientError("502", delay=0))
    before = Outbox(down, clock, store=store)
    before.put(_status("success", text="rolled out"))
    assert before.flush() == 0
    assert [k for k, _ in store.items("outbox/")] == [f"outbox/{SHA}/{AGGREGATE}"]

    publisher = FlakyPublisher()
    after = Outbox(publisher, clock, store=_sqlite(tmp_path))  # the process died; the file did not
    assert after.pending() == []
    assert after.restore() == 1
    assert after.restore() == 0  # already queued: not twice
    assert after.flush() == 1
    assert [(s.state, s.description, s.updated_at) for s in publisher.sent] == [
        ("success", "rolled out", "2023-11-14T22:13:20Z")
    ]
    assert store.items("outbox/") == []


def test_only_the_newest_status_per_context_is_kept(tmp_path: Path) -> None:
    """A newer status replaces the kept one for its (sha, context); a sent one is deleted at once."""
    clock = Clock()
    store = _sqlite(tmp_path)
    publisher = FlakyPublisher(TransientError("down", delay=0))
    outbox = Outbox(publisher, clock, store=store)
    outbox.put(_status("pending"))
    outbox.flush()
    outbox.put(_status("success", text="rolled out"))
    assert [v["state"] for _, v in store.items("outbox/")] == ["success"]
    clock.now += 600
    assert outbox.flush() == 1 and store.items("outbox/") == []


def test_a_tick_of_statuses_is_one_commit_to_keep_and_one_to_forget(tmp_path: Path) -> None:
    """put_many keeps every status in the store in one batch, flush deletes what it sent in one batch,
    and a newer status queued for a context while its older one was being sent keeps its copy."""
    store = _sqlite(tmp_path)
    batches: list[int] = []
    batch = store.batch

    def counted() -> contextlib.AbstractContextManager[None]:
        batches.append(1)
        return batch()

    store.batch = counted  # type: ignore[method-assign]
    publisher = FlakyPublisher()
    outbox = Outbox(publisher, Clock(), store=store)
    outbox.put_many([_status(context=f"ecs-gitops/prod/svc{i}") for i in range(50)])
    assert len(batches) == 1 and len(store.items("outbox/")) == 50

    again = _status("success", context="ecs-gitops/prod/svc3", text="deployed")

    def publish(status: CommitStatus) -> None:
        publisher.sent.append(status)
        if status.context == "ecs-gitops/prod/svc3" and status.state == "pending":
            outbox.put(again)  # the next tick's status for this context, queued while it was sent

    publisher.publish = publish  # type: ignore[method-assign]
    assert outbox.flush() == 50
    assert [k for k, _ in store.items("outbox/")] == [f"outbox/{SHA}/ecs-gitops/prod/svc3"]
    assert len(batches) == 3  # put_many, the put of the status queued again, the deletes
    assert outbox.pending() == [again.stamped(Clock()())]


def test_a_store_that_refuses_the_status_fails_the_put() -> None:
    """When the store cannot keep a status, put raises (the tick is retried) and nothing is queued that a
    crash could lose silently."""

    class Refusing:
        def put(self, key: str, value: dict) -> None:
            raise TransientError("DynamoDB: throttled")

        def batch(self) -> contextlib.nullcontext[None]:
            return contextlib.nullcontext()

    outbox = Outbox(FlakyPublisher(), Clock(), store=Refusing())
    with pytest.raises(TransientError):
        outbox.put(_status())
    assert outbox.pending() == []


def test_clear_forgets_memory_but_not_the_store(tmp_path: Path) -> None:
    """A replica that lost the lease clears its outbox; the statuses stay in the store for the next
    leader, which restores them."""
    clock = Clock()
    store = _sqlite(tmp_path)
    old_leader = Outbox(FlakyPublisher(TransientError("down", delay=0)), clock, store=store)
    old_leader.put(_status("success"))
    old_leader.flush()
    old_leader.clear()
    assert old_leader.pending() == [] and old_leader.flush() == 0
    new_leader = Outbox(FlakyPublisher(), clock, store=store)
    assert new_leader.restore() == 1 and new_leader.flush() == 1
