"""A damaged store heals itself: a file that is not a database is moved aside and the agent goes on as with
a deleted store; a row that is not a JSON object is dropped; each is one log line and one count."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from agent.http.metrics import Metrics
from agent.sandbox.harness import FakeClock
from agent.store import RECOVERED
from agent.store.dynamodb import DynamoLease, DynamoStore, create_table
from agent.store.sqlite import SqliteStore

_tables = itertools.count(1)


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    """The garbage is kept beside the store as ``state.db.corrupt-<time>``; the store starts empty."""
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a SQLite database\n" * 200)
    before = RECOVERED["sqlite_file"]
    with capture_logs() as logs:
        store = SqliteStore(path)
    assert store.get("rollout/prod/web") is None
    store.put("rollout/prod/web", {"result": "succeeded"})
    assert store.get("rollout/prod/web") == {"result": "succeeded"}
    store.close()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("state.db.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a SQLite database")
    assert RECOVERED["sqlite_file"] == before + 1
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["store.corrupt"]
    scraped = Metrics().render().decode()
    assert f'ecs_gitops_store_recoveries_total{{kind="sqlite_file"}} {float(before + 1)}' in scraped


def test_a_truncated_database_is_moved_aside(tmp_path: Path) -> None:
    """A database cut short (a full disk, a bad copy) fails its check and is replaced by an empty one."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    for i in range(300):
        store.put(f"rollout/prod/s{i}", {"n": i, "pad": "x" * 200})
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(data[:100] + b"\xff" * 4000 + data[4100 : len(data) // 2])
    store = SqliteStore(path)
    store.items("rollout/")  # whatever survived reads back; nothing raises
    store.put("rollout/prod/web", {"result": "succeeded"})
    assert store.get("rollout/prod/web") == {"result": "succeeded"}


def test_a_row_with_invalid_json_is_dropped_not_raised(tmp_path: Path) -> None:
    """get() answers None and items() and get_many() skip it, once logged; the row is gone afterwards."""
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.put("rollout/prod/api", {"result": "succeeded"})
    raw = sqlite3.connect(path)
    raw.execute("INSERT INTO state (key, value) VALUES ('rollout/prod/web', '{not json')")
    raw.execute("INSERT INTO state (key, value) VALUES ('rollout/prod/xyz', '[1, 2]')")
    raw.commit()
    raw.close()
    before = RECOVERED["sqlite_row"]
    with capture_logs() as logs:
        assert store.get("rollout/prod/web") is None
        assert store.items("rollout/") == [("rollout/prod/api", {"result": "succeeded"})]
        assert store.get("rollout/prod/web") is None
        assert store.get_many(["rollout/prod/api", "rollout/prod/web"]) == {
            "rollout/prod/api": {"result": "succeeded"}
        }
    assert RECOVERED["sqlite_row"] == before + 2
    assert [e["key"] for e in logs if e["event"] == "store.bad_row"] == [
        "rollout/prod/web",
        "rollout/prod/xyz",
    ]
    store.put("rollout/prod/web", {"result": "in_progress"})
    assert store.get("rollout/prod/web") == {"result": "in_progress"}


def test_a_dynamodb_row_with_invalid_json_reads_as_absent_and_is_overwritten(sandbox: Any) -> None:
    """The same for DynamoDB: the bad item reads as absent (logged, counted) and the next put replaces it."""
    client, table = sandbox.client("dynamodb"), f"damaged-{next(_tables)}"
    create_table(client, table)
    client.put_item(
        TableName=table,
        Item={
            "pk": {"S": "rollout"},
            "sk": {"S": "prod/web"},
            "value": {"S": "{oops"},
            "version": {"N": "3"},
        },
    )
    lease = DynamoLease(client, table, "a", 30, FakeClock().now)
    assert lease.acquire()
    store = DynamoStore(client, table, lease)
    before = RECOVERED["dynamodb_row"]
    assert store.get("rollout/prod/web") is None
    assert store.items("rollout/") == []
    assert RECOVERED["dynamodb_row"] == before + 2
    store.put("rollout/prod/web", {"result": "succeeded"})
    assert store.get("rollout/prod/web") == {"result": "succeeded"}
