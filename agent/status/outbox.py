"""Statuses waiting to be written: retried with backoff, never blocking a rollout.

The reconcile loop ``put``s statuses and calls ``flush`` once per tick. ``flush`` never raises and
never sleeps: it tries each status that is due once, and a failure schedules the next attempt
(exponential backoff with jitter, at least the delay the error asks for, at most ``max_backoff``).
After the first transient failure in a flush the other due statuses wait for the next flush — the host
is probably down, and a slow host must not hold the tick for one timeout per status.

A newer status for the same (sha, context) replaces an unsent older one, keeping its retry schedule
so a stream of updates cannot hammer a failing host. A ``PermanentError`` (bad token, unknown commit)
drops the status with an error log: retrying would give the same answer.

``pending()`` lists what is unsent, so a caller can persist it and ``put`` it back after a restart.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agent.errors import PermanentError, TransientError
from agent.status.model import CommitStatus, Publisher

log = structlog.get_logger("ecs_gitops.status")


@dataclass
class _Entry:
    status: CommitStatus
    due: float
    attempts: int = 0


class Outbox:
    """Unsent statuses for one publisher, keyed by (sha, context)."""

    def __init__(
        self,
        publisher: Publisher,
        clock: Callable[[], float],
        max_backoff: float = 300.0,
        *,
        base_backoff: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.publisher = publisher
        self.clock = clock
        self.max_backoff = max_backoff
        self.base_backoff = base_backoff
        self._rng = rng or random.Random()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def put(self, status: CommitStatus) -> None:
        """Queue ``status`` (stamped with the clock's time) to be sent at the next flush."""
        now = self.clock()
        status = status.stamped(now)
        key = (status.sha, status.context)
        with self._lock:
            old = self._entries.get(key)
            if old is None:
                self._entries[key] = _Entry(status, due=now)
            else:
                old.status = status  # supersede; keep the retry schedule

    def pending(self) -> list[CommitStatus]:
        """Unsent statuses, oldest first."""
        with self._lock:
            return [e.status for e in self._entries.values()]

    def next_due(self) -> float | None:
        """When the earliest unsent status is due (clock time), or None when nothing waits."""
        with self._lock:
            return min((e.due for e in self._entries.values()), default=None)

    def flush(self) -> int:
        """Try each due status once; return how many were sent. Never raises."""
        now = self.clock()
        with self._lock:
            due = [(key, e) for key, e in self._entries.items() if e.due <= now]
        sent = 0
        for key, entry in due:
            status = entry.status
            try:
                self.publisher.publish(status)
            except PermanentError as e:
                self._forget(key, status)
                log.error(
                    "status.dropped",
                    publisher=self.publisher.name,
                    sha=status.sha,
                    context=status.context,
                    state=status.state,
                    error=str(e),
                )
                continue
            except Exception as e:  # transient, or a bug in a publisher: retry either way
                delay = self._schedule(entry, now, e)
                log.warning(
                    "status.retry",
                    publisher=self.publisher.name,
                    sha=status.sha,
                    context=status.context,
                    state=status.state,
                    attempt=entry.attempts,
                    retry_in=round(delay, 1),
                    error=str(e) or type(e).__name__,
                )
                break
            self._forget(key, status)
            sent += 1
        return sent

    def _schedule(self, entry: _Entry, now: float, error: Exception) -> float:
        with self._lock:
            entry.attempts += 1
            backoff = self.base_backoff * 2 ** (entry.attempts - 1)
            asked = error.delay if isinstance(error, TransientError) else 0.0
            # Jitter only upwards, so a host's Retry-After is honoured; never beyond max_backoff.
            delay = min(self.max_backoff, max(backoff, asked) * self._rng.uniform(1.0, 1.25))
            entry.due = now + delay
            return delay

    def _forget(self, key: tuple[str, str], sent: CommitStatus) -> None:
        """Remove the entry unless a newer status replaced it while it was being sent."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.status is sent:
                del self._entries[key]
