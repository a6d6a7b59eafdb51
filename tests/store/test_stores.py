"""The state stores: SQLite and DynamoDB (on the sandbox) keep the same contract; DynamoDB adds versioned
writes and a leader lease whose token fences off a replica that lost it."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.errors import PermanentError
from agent.sandbox.harness import FakeClock
from agent.store import LeaseLost, SoleLease, StoreConflict, open_store
from agent.store.dynamodb import DynamoLease, DynamoStore, create_table
from agent.store.sqlite import SqliteStore

_tables = itertools.count(1)


class Replica:
    """One replica's view of a DynamoDB table: its lease and its store, on a shared fake clock."""

    def __init__(self, client: Any, table: str, owner: str, clock: FakeClock, ttl: float = 30) -> None:
        self.lease = DynamoLease(client, table, owner, ttl, clock.now)
        self.store = DynamoStore(client, table, self.lease)


@pytest.fixture
def table(sandbox: Any) -> str:
    name = f"state-{next(_tables)}"
    create_table(sandbox.client("dynamodb"), name)
    return name


@pytest.fixture
def ddb(sandbox: Any) -> Any:
    return sandbox.client("dynamodb")


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "state.db")
        yield sqlite
        sqlite.close()
        return
    ddb, table = request.getfixturevalue("ddb"), request.getfixturevalue("table")
    replica = Replica(ddb, table, "a", FakeClock())
    assert replica.lease.acquire()
    yield replica.store


def test_put_get_delete_and_items_by_prefix(store: Any) -> None:
    """Values round-trip as JSON, items() lists one prefix in key order, delete forgets a key."""
    assert store.get("rollout/prod/web") is None
    store.put("rollout/prod/web", {"state": "rolling", "n": 1, "nested": {"a": [1, 2]}})
    store.put("rollout/prod/api", {"state": "succeeded"})
    store.put("status/abc/ecs-gitops", {"state": "success"})
    store.put("rollout/prod/web", {"state": "succeeded"})
    assert store.get("rollout/prod/web") == {"state": "succeeded"}
    assert store.items("rollout/") == [
        ("rollout/prod/api", {"state": "succeeded"}),
        ("rollout/prod/web", {"state": "succeeded"}),
    ]
    assert store.items("rollout/prod/w") == [("rollout/prod/web", {"state": "succeeded"})]
    assert store.items("outbox/") == []
    store.delete("rollout/prod/api")
    store.delete("rollout/prod/api")  # deleting twice is fine
    assert [k for k, _ in store.items("rollout/")] == ["rollout/prod/web"]
    assert store.get("status/abc/ecs-gitops") == {"state": "success"}


def test_get_many_answers_what_get_answers_for_each_key(store: Any) -> None:
    """get_many() gives each key that has a value (missing keys left out, a key asked twice once), as
    get() would, across more keys than one SQLite query takes."""
    keys = [f"rollout/prod/svc{i:04d}" for i in range(1200)]
    for i, key in enumerate(keys[::3]):
        store.put(key, {"n": i})
    asked = [*keys, keys[0], "status/abc/none"]
    assert store.get_many(asked) == {key: store.get(key) for key in keys if store.get(key) is not None}
    assert len(store.get_many(asked)) == 400
    assert store.get_many([]) == {}


def test_a_batch_is_committed_once_at_its_end_and_keeps_what_it_wrote_on_an_error(tmp_path: Path) -> None:
    """SQLite: another connection sees nothing of a batch until it ends, then all of it; a batch that
    raises still commits what it wrote (as single writes would have); a batch within a batch joins it."""
    store = SqliteStore(tmp_path / "state.db")
    other = sqlite3.connect(tmp_path / "state.db")

    def seen() -> list[str]:
        return [k for (k,) in other.execute("SELECT key FROM state ORDER BY key")]

    with store.batch():
        store.put("status/a/one", {"n": 1})
        with store.batch():
            store.put("status/a/two", {"n": 2})
        store.delete("status/a/one")
        assert seen() == []
    assert seen() == ["status/a/two"]
    with pytest.raises(RuntimeError), store.batch():
        store.put("status/b/one", {"n": 1})
        raise RuntimeError("a bug half-way")
    assert seen() == ["status/a/two", "status/b/one"]
    store.put("status/c/one", {"n": 1})  # outside a batch: at once, as before
    assert seen()[-1] == "status/c/one"
    other.close()


def test_values_survive_a_new_store_object(store: Any) -> None:
    """What one store object wrote, another one on the same file or table reads (a restart)."""
    store.put("outbox/abc/ecs-gitops", {"state": "pending"})
    if isinstance(store, SqliteStore):
        again: Any = SqliteStore(store.path)
    else:
        again = DynamoStore(store.client, store.table, store.lease)
    assert again.items("outbox/") == [("outbox/abc/ecs-gitops", {"state": "pending"})]


def test_the_first_replica_takes_the_lease_and_the_second_stands_by(ddb: Any, table: str) -> None:
    """One lease per table: the first acquire holds it with token 1, the other replica is refused
    and learns who holds it; renewals keep the same token."""
    clock = FakeClock()
    a, b = Replica(ddb, table, "a", clock), Replica(ddb, table, "b", clock)
    assert a.lease.acquire() and a.lease.token == 1
    assert not b.lease.acquire() and b.lease.token is None
    assert b.lease.holder() == {"owner": "a", "token": 1, "expires": clock.now().timestamp() + 30}
    clock.advance(20)
    assert a.lease.acquire() and a.lease.token == 1  # renewed, now valid until t+50
    clock.advance(20)
    assert not b.lease.acquire()  # t+40: would have expired without the renewal


def test_an_expired_lease_is_taken_over_and_the_old_leader_is_fenced_off(ddb: Any, table: str) -> None:
    """After the TTL without renewal another replica takes the lease with token 2; every write of the old
    leader is then refused (LeaseLost) and changes nothing, and it stands by on its next acquire."""
    clock = FakeClock()
    a, b = Replica(ddb, table, "a", clock), Replica(ddb, table, "b", clock)
    assert a.lease.acquire()
    a.store.put("rollout/prod/web", {"by": "a"})
    clock.advance(29)
    assert not b.lease.acquire()
    clock.advance(2)
    assert b.lease.acquire() and b.lease.token == 2
    assert b.store.get("rollout/prod/web") == {"by": "a"}  # the new leader carries on from the store
    b.store.put("rollout/prod/web", {"by": "b"})

    with pytest.raises(LeaseLost):
        a.store.put("rollout/prod/api", {"by": "a, too late"})  # a key b never touched: still fenced
    with pytest.raises(LeaseLost):
        a.store.delete("rollout/prod/web")
    assert a.lease.token is None
    assert b.store.items("rollout/") == [("rollout/prod/web", {"by": "b"})]
    assert not a.lease.acquire()
    assert a.lease.holder() is not None and a.lease.holder()["owner"] == "b"


def test_a_released_lease_is_taken_at_once(ddb: Any, table: str) -> None:
    """A leader that stops cleanly releases the lease, so the next replica takes it without waiting."""
    clock = FakeClock()
    a, b = Replica(ddb, table, "a", clock), Replica(ddb, table, "b", clock)
    assert a.lease.acquire()
    a.lease.release()
    assert b.lease.acquire() and b.lease.token == 2
    with pytest.raises(LeaseLost):
        a.store.put("rollout/prod/web", {"by": "a"})


def test_the_same_owner_after_a_restart_takes_its_lease_back_with_a_new_token(ddb: Any, table: str) -> None:
    """A replica restarted under the same owner name need not wait for its own lease to expire, and the
    new token fences off the process it replaced."""
    clock = FakeClock()
    before, after = Replica(ddb, table, "pod-0", clock), Replica(ddb, table, "pod-0", clock)
    assert before.lease.acquire()
    assert after.lease.acquire() and after.lease.token == 2
    with pytest.raises(LeaseLost):
        before.store.put("rollout/prod/web", {"by": "the old process"})


def test_a_write_without_the_lease_sends_nothing(ddb: Any, table: str) -> None:
    """A replica that never held the lease cannot write at all."""
    clock = FakeClock()
    a, b = Replica(ddb, table, "a", clock), Replica(ddb, table, "b", clock)
    assert a.lease.acquire()
    with pytest.raises(LeaseLost):
        b.store.put("status/abc/ecs-gitops", {"state": "success"})
    assert a.store.get("status/abc/ecs-gitops") is None


def test_a_lost_update_is_a_conflict_not_an_overwrite(ddb: Any, table: str) -> None:
    """Writes carry the version last read: when something else changed the item since (an operator's
    script, say), the write fails with StoreConflict instead of overwriting it, and the next
    read-then-write succeeds."""
    clock = FakeClock()
    a = Replica(ddb, table, "a", clock)
    assert a.lease.acquire()
    a.store.put("rollout/prod/web", {"v": 1})
    key = {"pk": {"S": "rollout"}, "sk": {"S": "prod/web"}}
    ddb.put_item(TableName=table, Item={**key, "value": {"S": '{"v": "by hand"}'}, "version": {"N": "2"}})
    with pytest.raises(StoreConflict):
        a.store.put("rollout/prod/web", {"v": "stale"})
    assert a.store.get("rollout/prod/web") == {"v": "by hand"}
    a.store.put("rollout/prod/web", {"v": 3})
    assert ddb.get_item(TableName=table, Key=key)["Item"]["version"] == {"N": "3"}


def test_the_leader_reads_each_key_once_per_leadership(ddb: Any, table: str) -> None:
    """As the only writer, the leader answers repeated reads from memory; after another replica led in
    between (a new token), it reads the table again and sees that replica's writes."""
    clock = FakeClock()
    a, b = Replica(ddb, table, "a", clock), Replica(ddb, table, "b", clock)
    reads: list[bool] = []
    ddb.meta.events.register("before-call.dynamodb.GetItem", lambda **_: reads.append(True))
    assert a.lease.acquire()
    a.store.put("rollout/prod/web", {"v": 1})
    reads.clear()
    assert a.store.get("rollout/prod/web") == {"v": 1}
    assert a.store.get("rollout/prod/api") is None
    assert a.store.get("rollout/prod/api") is None
    assert len(reads) == 1  # only the key it had never seen

    a.lease.release()
    assert b.lease.acquire()
    b.store.put("rollout/prod/web", {"v": 2})
    b.lease.release()
    assert a.lease.acquire() and a.lease.token == 3
    assert a.store.get("rollout/prod/web") == {"v": 2}


def test_a_missing_table_is_refused_at_start_with_what_to_do(sandbox: Any, tmp_path: Path) -> None:
    """store.type dynamodb on a table that does not exist stops the agent with the table's name and
    where the docs say how to create it."""
    from agent.aws.clients import Aws
    from agent.config import StoreConfig

    aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
    with pytest.raises(PermanentError, match=r"'no-such-table' does not exist: create it as docs/ha.md"):
        open_store(StoreConfig(type="dynamodb", table="no-such-table"), tmp_path, aws, FakeClock().now)


def test_open_store_follows_the_config(sandbox: Any, tmp_path: Path, table: str) -> None:
    """sqlite gives a file in the data directory and a lease always held; dynamodb a fenced table store
    whose owner defaults to host:pid."""
    import os
    import socket

    from agent.aws.clients import Aws
    from agent.config import StoreConfig

    store, lease = open_store(StoreConfig(), tmp_path, None, FakeClock().now)
    assert isinstance(store, SqliteStore) and Path(store.path) == tmp_path / "ecs-gitops-state.db"
    assert isinstance(lease, SoleLease) and lease.acquire()
    aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
    config = StoreConfig(type="dynamodb", table=table, lease_ttl="45s")
    store, lease = open_store(config, tmp_path, aws, FakeClock().now)
    assert isinstance(store, DynamoStore) and isinstance(lease, DynamoLease)
    assert lease.owner == f"{socket.gethostname()}:{os.getpid()}" and lease.ttl == 45
    assert lease.acquire()
    store.put("rollout/x/y", {"ok": True})
    assert store.get("rollout/x/y") == {"ok": True}


def test_the_cli_refuses_a_missing_table_naming_it(sandbox: Any, tmp_path: Path, capsys: Any) -> None:
    """`ecs-gitops apply` with store.type dynamodb on a table that does not exist exits 1 with what to do,
    and never falls back to SQLite."""
    from agent.cli import main

    config = tmp_path / "agent.yaml"
    config.write_text(
        f"apiVersion: ecs-gitops/v1\nkind: AgentConfig\nsource: {{repo: {tmp_path}}}\n"
        "store: {type: dynamodb, table: missing-table}\n"
    )
    argv = ["apply", "--config", str(config), "--data-dir", str(tmp_path / "data")]
    assert main([*argv, "--endpoint-url", sandbox.endpoint, "--region", sandbox.region]) == 1
    assert "DynamoDB table 'missing-table' does not exist: create it as docs/ha.md" in capsys.readouterr().err
    assert not (tmp_path / "data" / "ecs-gitops-state.db").exists()
