"""When ticks run: one thread of their own, one tick at a time, never two back to back.

``TickLoop`` calls its ``tick`` function at start, ``interval`` (plus up to ``jitter``) after the last tick
began, at the wake-up time the last tick asked for (a bake, a window), and soon after ``ask()`` (a push
webhook, a commit the file watcher saw, the leader lease taken over). Asks that arrive while a tick runs
coalesce into one follow-up tick: 300 webhooks during one tick cause one more tick, not 300.

After a tick that ran to its end the loop always pauses: a tenth of the last tick, at least ``MIN_PAUSE``
seconds, before a poll or a wake-up; ``MIN_PAUSE`` alone before an asked-for tick (a push should not wait
for a tenth of a long tick). So a tick that outlasts the poll interval (a large repository, a slow AWS
endpoint) never starves the rest of the agent: the agent's lock is free in the pause (the bench, tests), a
stop request waits for at most the tick in progress, and an asked-for tick starts at most one tick (plus
``MIN_PAUSE``) after it was asked for. Each tick's duration goes to ``took`` (the daemon counts the
overruns there).

An ask that arrives while a tick is still only reading (fetch, load, observe, plan: before its first AWS
write) interrupts it: ``interrupting()`` turns true, the tick checks it at its safe points and raises
``Interrupted``, and the loop starts the next tick at once, with no pause (the interrupted tick wrote
nothing, so there is nothing to let the rest of the agent catch up with). The tick that follows an
interrupted one is not interrupted in turn, so a stream of asks delays a tick by at most one more.

A ``Worker`` is the same idea without a schedule: a thread that runs its function when asked, one run at
a time, asks coalescing (the pull-request plans run on one, apart from the ticks).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Self

import structlog

from agent.errors import Interrupted

log = structlog.get_logger()

MIN_PAUSE = 0.25  # seconds between the end of a tick and the start of the next, at least
PAUSE_SHARE = 0.1  # ... and at least this share of the last tick's duration


def poll_jitter(interval: float) -> float:
    """The most a poll runs late: up to a tenth of the interval, at least a second, so replicas and
    agents started together do not poll in step."""
    return float(max(1, int(interval) // 10))


def pause_after(seconds: float) -> float:
    """The pause after a tick of ``seconds``: ticks never run back to back."""
    return max(MIN_PAUSE, PAUSE_SHARE * seconds)


class _Asked:
    """A thread of its own that runs when asked: ``ask``, ``start`` and ``stop`` (after the run in
    progress) shared by the tick loop and the worker; subclasses give ``_loop``."""

    def __init__(self, name: str, asked: bool) -> None:
        self._name = name
        self._changed = threading.Condition()
        self._asked = asked
        self._stopping = False
        self._thread: threading.Thread | None = None

    def ask(self) -> None:
        """Ask for a run as soon as the current one (and any pause after it) allows."""
        with self._changed:
            self._asked = True
            self._changed.notify_all()

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """No run starts after this; True once the run in progress (if any) has ended within ``timeout``."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _loop(self) -> None:
        raise NotImplementedError


class TickLoop(_Asked):
    """Runs ``tick`` on a thread of its own (see the module docstring).

    ``tick()`` returns in how many seconds the next tick is wanted (a rollout's wake-up time), or None;
    it raises ``Interrupted`` when it stopped because ``interrupting()`` said so. ``took(seconds)`` is
    called after each tick that was not interrupted, with its duration.
    """

    def __init__(
        self,
        tick: Callable[[], float | None],
        interval: float,
        jitter: float = 0.0,
        took: Callable[[float], None] = lambda seconds: None,
        monotonic: Callable[[], float] = time.monotonic,
        name: str = "ticks",
    ) -> None:
        super().__init__(name, asked=True)  # the first tick runs at once
        self._tick = tick
        self.interval = float(interval)
        self.jitter = max(0.0, float(jitter))
        self._took = took
        self._monotonic = monotonic
        self._running = False
        self._poll_at = 0.0
        self._wake_at: float | None = None
        self._not_before = 0.0  # the end of the last tick plus its pause
        self._asked_not_before = 0.0  # the end of the last tick plus MIN_PAUSE (0 when it was interrupted)
        self._interruptible = True  # the tick in progress may be interrupted (none was just before it)
        self._interrupt = False  # an ask came while the tick in progress may be interrupted
        self.ticks = 0  # ticks run to their end so far
        self.interrupted = 0  # ticks interrupted so far

    def ask(self) -> None:
        """Ask for a tick as soon as possible: at once when idle, and when a tick is reading, once it has
        stopped at its next safe point (see ``interrupting``); after the tick in progress otherwise."""
        with self._changed:
            self._asked = True
            if self._running and self._interruptible:
                self._interrupt = True
            self._changed.notify_all()

    def interrupting(self) -> bool:
        """Whether the tick in progress should stop at its next safe point, if it is still only reading: an
        ask came during it (and it does not follow an interrupted tick). Called from the tick's threads."""
        return self._interrupt

    @property
    def running(self) -> bool:
        """Whether a tick is in progress."""
        return self._running

    @property
    def idle(self) -> bool:
        """No tick in progress and none asked for (a poll or a wake-up may still be due later)."""
        with self._changed:
            return not self._running and not self._asked

    def _due(self) -> float | None:
        """When the next tick is due (monotonic seconds), under the condition's lock; None: stop."""
        if self._stopping:
            return None
        if self._asked:
            return self._asked_not_before
        due = self._poll_at if self._wake_at is None else min(self._poll_at, self._wake_at)
        return max(due, self._not_before)

    def _loop(self) -> None:
        while True:
            with self._changed:
                while True:
                    due = self._due()
                    if due is None:
                        return
                    wait = due - self._monotonic()
                    if wait <= 0:
                        break
                    self._changed.wait(wait)
                self._asked = False
                self._interrupt = False
                self._running = True
            started = self._monotonic()
            wake_in: float | None = None
            interrupted = False
            try:
                wake_in = self._tick()
            except Interrupted:
                interrupted = True
            except Exception as e:  # pragma: no cover - the tick logs its own errors; keep the loop alive
                log.error("tick.crashed", error=repr(e))
            finally:
                ended = self._monotonic()
                with self._changed:
                    self._running = False
                    self._interruptible = not interrupted
                    self._poll_at = started + self.interval + random.uniform(0, self.jitter)
                    if interrupted:  # the next tick (asked for) starts at once
                        self.interrupted += 1
                        self._not_before = self._asked_not_before = ended
                    else:
                        self.ticks += 1
                        self._wake_at = None if wake_in is None else ended + max(0.0, wake_in)
                        self._not_before = ended + pause_after(ended - started)
                        self._asked_not_before = ended + MIN_PAUSE
                    self._changed.notify_all()
            if interrupted:
                log.info("tick.interrupted", seconds=round(ended - started, 3))
                continue
            try:
                self._took(ended - started)
            except Exception as e:  # pragma: no cover - a metrics bug must not stop the loop
                log.error("tick.took_failed", error=repr(e))


class Worker(_Asked):
    """Runs ``work`` on a thread of its own whenever asked, one run at a time; asks made during a run
    coalesce into one more run."""

    def __init__(self, work: Callable[[], object], name: str = "worker") -> None:
        super().__init__(name, asked=False)
        self._work = work
        self.runs = 0  # runs completed so far

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not self._asked and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                self._asked = False
            try:
                self._work()
            except Exception as e:  # pragma: no cover - the work logs its own errors; keep the thread
                log.error("worker.crashed", worker=self._name, error=repr(e))
            with self._changed:
                self.runs += 1
                self._changed.notify_all()
