"""Statuses waiting to be written: retried with backoff, never blocking a rollout.

The reconcile loop ``put``s statuses and calls ``flush`` once per tick. ``flush`` never raises and
never sleeps: it tries each status that is due once, and a failure schedules the next attempt
(exponential backoff with jitter, at least the delay the error asks for, at most ``max_backoff``).
After the first transient failure in a flush the other due statuses wait for the next flush — the host
is probably down, and a slow host must not hold the tick for one timeout per status.

A newer status for the same (sha, context) replaces an unsent older one, keeping its retry schedule
so a stream of updates cannot hammer a failing host; it then goes behind the others, so statuses are
sent in the order they were last queued and nothing older ever overwrites a newer one. A status is never
dropped: a ``PermanentError`` (a bad or missing token, a commit the host does not know) is logged at
error level and retried with the same backoff, because a human fixing the token must not lose what
happened meanwhile. Only one flush runs at a time (the tick's and the scheduler's), so two sends of one
context can never cross.

What waits is visible: ``pending()``, ``undelivered_for()`` (seconds since the oldest waiting status first
failed: /readyz reports it) and ``failures`` (attempts that failed, by (publisher, reason): the metrics).

With a ``store`` (the agent's state store) every unsent status is also kept there, under
``outbox/<sha>/<context>``, from ``put`` until it is sent or dropped: a status that could not be
written survives a restart, and a replica that takes the leader lease over sends what the previous
leader could not (``restore``). ``put`` raises when the store cannot keep the status (the tick fails
and is retried); the memory-only outbox is for tests and tools.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from agent.errors import PermanentError, TransientError
from agent.status.model import CommitStatus, Publisher, render_target_url

log = structlog.get_logger("ecs_gitops.status")


@dataclass
class _Entry:
    status: CommitStatus
    due: float
    seq: int
    attempts: int = 0
    failing_since: float | None = None  # clock time of the first failed attempt of this (sha, context)


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
        store: Any = None,
        target_url: str | None = None,
    ) -> None:
        self.publisher = publisher
        self.target_url = target_url  # status.targetUrl: a template with {sha}, {context}, {service}
        self.store = store
        self.clock = clock
        self.max_backoff = max_backoff
        self.base_backoff = base_backoff
        self._rng = rng or random.Random()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._seq = 0
        self.failures: dict[tuple[str, str], int] = {}  # (publisher, reason) -> failed attempts
        self.sent = 0  # statuses delivered since the start
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        # Held around each (memory, store) change together, so the store never lags behind memory.
        self._persist = threading.Lock()

    def put(self, status: CommitStatus) -> None:
        """Queue ``status`` (stamped with the clock's time) to be sent at the next flush; with a store,
        keep it there first (raises, queueing nothing, when the store refuses)."""
        self.put_many([status])

    def put_many(self, statuses: Iterable[CommitStatus]) -> None:
        """``put`` of each status, kept in the store in one batch (a tick's 1,000 statuses, one commit);
        raises, queueing none of them, when the store refuses."""
        now = self.clock()
        ready = []
        for status in statuses:
            status = status.stamped(now)
            if self.target_url and not status.target_url:
                url = render_target_url(self.target_url, status.sha, status.context)
                status = replace(status, target_url=url)
            ready.append(status)
        with self._persist:
            if self.store is not None:
                with self.store.batch():
                    for status in ready:
                        self.store.put(_store_key((status.sha, status.context)), _to_json(status))
            with self._lock:
                for status in ready:
                    key = (status.sha, status.context)
                    self._seq += 1
                    old = self._entries.pop(key, None)
                    if old is None:
                        self._entries[key] = _Entry(status, due=now, seq=self._seq)
                    else:  # supersede; keep the retry schedule, go behind the others
                        old.status, old.seq = status, self._seq
                        self._entries[key] = old

    def restore(self) -> int:
        """Queue the statuses kept in the store that this outbox does not hold (after a restart or a
        takeover), due at once; return how many."""
        if self.store is None:
            return 0
        now = self.clock()
        added = 0
        with self._persist:
            kept = []
            for store_key, value in self.store.items(f"{PREFIX}/"):
                try:
                    kept.append(_from_json(value))
                except (KeyError, TypeError, ValueError) as e:
                    log.error("status.unreadable", key=store_key, error=str(e))
            kept.sort(key=lambda s: s.updated_at or "")  # queued order, to the second
            for status in kept:
                with self._lock:
                    if (status.sha, status.context) not in self._entries:
                        self._seq += 1
                        self._entries[(status.sha, status.context)] = _Entry(status, due=now, seq=self._seq)
                        added += 1
        if added:
            log.info("status.restored", count=added, publisher=self.publisher.name)
        return added

    def clear(self) -> None:
        """Forget every unsent status in memory only (this replica lost the lease: they stay in the store
        for the new leader)."""
        with self._lock:
            self._entries.clear()

    def pending(self) -> list[CommitStatus]:
        """Unsent statuses, in the order they will be sent (oldest queued first)."""
        with self._lock:
            return [e.status for e in sorted(self._entries.values(), key=lambda e: e.seq)]

    def undelivered_for(self) -> float | None:
        """Seconds since the oldest unsent status first failed to be written; None when none has failed."""
        with self._lock:
            since = min(
                (e.failing_since for e in self._entries.values() if e.failing_since is not None), default=None
            )
        return None if since is None else max(0.0, self.clock() - since)

    def next_due(self) -> float | None:
        """When the earliest unsent status is due (clock time), or None when nothing waits."""
        with self._lock:
            return min((e.due for e in self._entries.values()), default=None)

    def flush(self) -> int:
        """Try each due status once, in queued order; return how many were sent. Never raises; returns 0
        at once while another flush runs."""
        if not self._flushing.acquire(blocking=False):
            return 0
        try:
            return self._flush()
        finally:
            self._flushing.release()

    def _flush(self) -> int:
        now = self.clock()
        with self._lock:
            due = sorted(((k, e) for k, e in self._entries.items() if e.due <= now), key=lambda ke: ke[1].seq)
        sent = 0
        done: list[tuple[str, str]] = []  # sent and gone from memory: their store copies go at the end
        try:
            for key, entry in due:
                if not self._send(key, entry, now, done):
                    break  # the host is probably down or refusing us: the others wait for the next flush
                sent += 1
        finally:
            self._forget_kept(done)
        with self._lock:
            self.sent += sent
        return sent

    def _send(self, key: tuple[str, str], entry: _Entry, now: float, done: list[tuple[str, str]]) -> bool:
        """Publish one entry; True when it was written (then forgotten in memory, its key added to
        ``done``), False when it failed (then scheduled again)."""
        status = entry.status
        try:
            self.publisher.publish(status)
        except Exception as e:  # permanent, transient, or a bug in a publisher: retry each way
            delay = self._schedule(entry, now, e)
            permanent = isinstance(e, PermanentError)
            (log.error if permanent else log.warning)(
                "status.undelivered" if permanent else "status.retry",
                publisher=self.publisher.name,
                sha=status.sha,
                context=status.context,
                state=status.state,
                attempt=entry.attempts,
                retry_in=round(delay, 1),
                reason=failure_reason(e),
                error=str(e) or type(e).__name__,
            )
            return False
        with self._lock:
            current = self._entries.get(key)  # unless a newer status replaced it while it was being sent
            if current is not None and current.status is status:
                del self._entries[key]
                done.append(key)
        return True

    def _schedule(self, entry: _Entry, now: float, error: Exception) -> float:
        with self._lock:
            entry.attempts += 1
            if entry.failing_since is None:
                entry.failing_since = now
            name = (self.publisher.name, failure_reason(error))
            self.failures[name] = self.failures.get(name, 0) + 1
            backoff = self.base_backoff * 2 ** (entry.attempts - 1)
            asked = error.delay if isinstance(error, TransientError) else 0.0
            # Jitter only upwards, so a host's Retry-After is honoured; never beyond max_backoff.
            delay = min(self.max_backoff, max(backoff, asked) * self._rng.uniform(1.0, 1.25))
            entry.due = now + delay
            return delay

    def _forget_kept(self, keys: list[tuple[str, str]]) -> None:
        """Delete the store copies of sent statuses, in one batch, except where a newer status for the
        same key was queued meanwhile (it is in memory again, and its copy is the one in the store). A
        store that cannot delete them now only means they are sent once more after a restart."""
        if self.store is None or not keys:
            return
        with self._persist:
            with self._lock:
                gone = [key for key in keys if key not in self._entries]
            try:
                with self.store.batch():
                    for key in gone:
                        self.store.delete(_store_key(key))
            except Exception as e:
                log.warning("status.forget_failed", count=len(gone), error=str(e))


PREFIX = "outbox"


def failure_reason(error: Exception) -> str:
    """A short label for why a write failed: the publisher's own (auth, rate_limited, unreachable, ...),
    else transient, permanent or bug."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    if isinstance(error, TransientError):
        return "transient"
    return "permanent" if isinstance(error, PermanentError) else "bug"


def _store_key(key: tuple[str, str]) -> str:
    return f"{PREFIX}/{key[0]}/{key[1]}"


def _to_json(status: CommitStatus) -> dict[str, Any]:
    return {"sha": status.sha, "context": status.context, "ref": status.ref, **status.as_entry()}


def _from_json(value: dict[str, Any]) -> CommitStatus:
    return CommitStatus(
        sha=value["sha"],
        context=value["context"],
        state=value["state"],
        description=value.get("description") or "",
        target_url=value.get("targetUrl"),
        updated_at=value.get("updatedAt"),
        ref=value.get("ref"),
    )
