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

import os
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from agent.errors import PermanentError, TransientError
from agent.store.recovery import RECOVERED as RECOVERED  # repairs of a damaged store, by kind


class StateStore(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...

    def items(self, prefix: str) -> list[tuple[str, dict[str, Any]]]: ...


class Lease(Protocol):
    """Leadership among the replicas sharing one store."""

    owner: str

    def acquire(self) -> bool:
        """Renew the lease when held, else take it if it is free or expired; True when this replica leads.
        Raises ``TransientError`` when the store cannot be reached (the caller does not act then)."""
        ...

    def release(self) -> None:
        """Give the lease up (a clean shutdown), so another replica takes over at once."""
        ...

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lease as last seen: ``{"owner", "token", "expires"}``, or None when unknown."""
        ...


class LeaseLost(TransientError):
    """A write was refused because this replica no longer holds the leader lease (another one took it
    over): stop acting; the new leader carries on from the shared store."""


class StoreConflict(TransientError):
    """Another writer changed a key since this replica read it; the next tick reads it afresh."""


class SoleLease:
    """The lease of a store with one replica (SQLite): always held."""

    def __init__(self, owner: str | None = None) -> None:
        self.owner = owner or default_owner()

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def holder(self) -> dict[str, Any] | None:
        return {"owner": self.owner, "token": 0, "expires": None}


def default_owner() -> str:
    """This replica's name in the lease: ``host:pid`` (a container's host name is its task or pod)."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
