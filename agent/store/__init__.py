"""State the agent cannot observe in AWS (last reconciled commit, rollout results, statuses written).

``StateStore`` is a small key -> JSON-object store. SQLite is the default; DynamoDB with a leader
lease comes with the high-availability work.
"""

from __future__ import annotations

from typing import Any, Protocol


class StateStore(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, key: str) -> None: ...

    def items(self, prefix: str) -> list[tuple[str, dict[str, Any]]]: ...
