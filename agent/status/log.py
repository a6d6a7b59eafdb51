"""A publisher that only logs: one ``status.published`` event per status, kept in memory for ``read``.

Useful when the Git host takes no statuses, in the demo, and as the fake other tests assert on.
"""

from __future__ import annotations

import threading

import structlog

from agent.status.model import CommitStatus

log = structlog.get_logger("ecs_gitops.status")


class LogPublisher:
    """Logs each status and remembers the latest per (sha, context)."""

    name = "log"

    def __init__(self) -> None:
        self._statuses: dict[str, dict[str, dict]] = {}
        self._lock = threading.Lock()

    def publish(self, status: CommitStatus) -> None:
        status = status.stamped()
        log.info(
            "status.published",
            sha=status.sha,
            context=status.context,
            state=status.state,
            description=status.description,
        )
        with self._lock:
            self._statuses.setdefault(status.sha, {})[status.context] = status.as_entry()

    def read(self, sha: str) -> dict[str, dict]:
        with self._lock:
            return {context: dict(entry) for context, entry in self._statuses.get(sha, {}).items()}
