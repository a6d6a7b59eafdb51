"""The store and lease protocols every store implements, and the errors they raise."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from agent.errors import TransientError


class StateStore(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The value of each of ``keys`` that has one (``get`` of each, in as few reads as the store can)."""
        ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...

    def batch(self) -> AbstractContextManager[None]:
        """A context in which this thread's puts and deletes may be committed together, at its end."""
        ...

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
