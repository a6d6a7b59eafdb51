"""State the agent cannot observe in AWS (rollout results, statuses written and still to write), and who
may act.

``StateStore`` is a small key -> JSON-object store; ``Lease`` says whether this replica is the one that
acts. Two implementations, chosen by ``store.type`` in the agent config (``open_store``):

* ``sqlite`` (default): a file in the data directory; one replica, which always leads (``SoleLease``).
* ``dynamodb``: one table shared by several replicas; exactly one holds the leader lease and acts, the
  others stand by and take over when its lease expires. Every write is fenced by the lease's token, so
  a replica that lost the lease cannot write any more (agent/store/dynamodb.py).

A damaged store is repaired, not fatal (agent/store/recovery.py): ``RECOVERED`` counts the repairs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.errors import PermanentError
from agent.store.base import Lease, LeaseLost, SoleLease, StateStore, StoreConflict, default_owner
from agent.store.recovery import RECOVERED  # repairs of a damaged store, by kind

__all__ = [
    "RECOVERED",
    "Lease",
    "LeaseLost",
    "SoleLease",
    "StateStore",
    "StoreConflict",
    "default_owner",
    "open_store",
]


def open_store(
    config: Any, data_dir: Path, aws: Any, clock: Callable[[], datetime]
) -> tuple[StateStore, Lease]:
    """The store and lease ``config`` (a ``StoreConfig``) asks for."""
    if config.type == "sqlite":
        from agent.store.sqlite import SqliteStore

        return SqliteStore(Path(data_dir) / config.path), SoleLease(config.owner)
    if config.type == "dynamodb":
        from agent.store.dynamodb import DynamoLease, DynamoStore

        client = aws.client("dynamodb")
        lease = DynamoLease(
            client, config.table, config.owner or default_owner(), config.lease_ttl_seconds, clock
        )
        store = DynamoStore(client, config.table, lease)
        store.check()
        return store, lease
    raise PermanentError(f"store.type {config.type!r} is not a store type (sqlite or dynamodb)")
