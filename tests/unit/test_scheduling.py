"""The tick loop: asks made during a tick coalesce into one follow-up, ticks that outlast the interval are
never run back to back, an ask waits for at most the tick in progress (and interrupts it while it only
reads), and a stop ends the loop after the tick in progress without starting another."""

from __future__ import annotations

import threading
import time

from agent.errors import Interrupted
from agent.reconcile.scheduling import MIN_PAUSE, TickLoop, Worker, pause_after


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class _Clock:
    """Real monotonic time plus the time ticks pretend to take (a tick "lasts" without sleeping)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


class _Ticks:
    """A tick function that records (start, end) on the loop's clock; a tick waits while ``gate`` is
    closed, then pretends to last ``seconds``."""

    def __init__(self, clock: _Clock, seconds: float = 0.0) -> None:
        self.clock = clock
        self.seconds = seconds
        self.spans: list[tuple[float, float]] = []
        self.started = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> None:
        start = self.clock()
        self.started += 1
        self.gate.wait(30)
        self.clock.offset += self.seconds
        self.spans.append((start, self.clock()))


def test_asks_during_a_tick_coalesce_into_one_follow_up() -> None:
    """300 asks while a tick runs cause exactly one more tick."""
    clock = _Clock()
    ticks = _Ticks(clock)
    ticks.gate.clear()
    loop = TickLoop(ticks, interval=3600, monotonic=clock).start()
    try:
        _wait_for(lambda: ticks.started == 1, 10, "the first tick")
        for _ in range(300):
            loop.ask()
        ticks.gate.set()
        _wait_for(lambda: loop.ticks == 2 and loop.idle, 10, "the follow-up tick")
    finally:
        assert loop.stop(timeout=10)
    assert loop.ticks == 2 and ticks.started == 2


def test_ticks_that_outlast_the_interval_never_run_back_to_back() -> None:
    """Ticks of 5 s against an interval of 1 s: each is reported overrun, and each next one starts a pause
    (a tenth of the tick) after the last ended, never at once."""
    clock = _Clock()
    ticks = _Ticks(clock, seconds=5.0)
    took: list[float] = []
    loop = TickLoop(ticks, interval=1, monotonic=clock, took=took.append).start()
    try:
        _wait_for(lambda: len(ticks.spans) >= 3, 30, "three ticks")
    finally:
        assert loop.stop(timeout=10)
    assert all(seconds >= 5.0 for seconds in took)
    gaps = [b[0] - a[1] for a, b in zip(ticks.spans, ticks.spans[1:], strict=False)]
    assert gaps and all(gap >= pause_after(5.0) - 0.01 for gap in gaps), gaps
    assert pause_after(5.0) == 0.5 and pause_after(0.1) == MIN_PAUSE


def test_an_ask_waits_for_at_most_the_tick_in_progress() -> None:
    """With a long interval, an ask made during a tick starts the next one right after it and its pause."""
    clock = _Clock()
    ticks = _Ticks(clock)
    ticks.gate.clear()
    loop = TickLoop(ticks, interval=3600, monotonic=clock).start()
    try:
        _wait_for(lambda: ticks.started == 1, 10, "the first tick")
        loop.ask()
        ticks.gate.set()
        _wait_for(lambda: len(ticks.spans) == 2, 10, "the asked-for tick")
    finally:
        assert loop.stop(timeout=10)
    (_, first_end), (second_start, _) = ticks.spans
    assert MIN_PAUSE - 0.01 <= second_start - first_end < MIN_PAUSE + 5  # the pause, then at once


def test_a_stop_waits_for_the_tick_in_progress_and_starts_no_other() -> None:
    """Stopping while a tick runs (and another is asked for) ends the loop when that tick ends."""
    clock = _Clock()
    ticks = _Ticks(clock)
    ticks.gate.clear()
    loop = TickLoop(ticks, interval=0.01, monotonic=clock).start()
    _wait_for(lambda: ticks.started == 1, 10, "the first tick")
    loop.ask()
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(loop.stop(timeout=10)))
    stopper.start()
    _wait_for(lambda: loop._stopping, 10, "the stop request")
    assert not stopped  # the tick in progress is not cut short
    ticks.gate.set()
    stopper.join(timeout=10)
    assert stopped == [True] and ticks.started == 1


def test_a_wake_up_time_brings_the_next_tick_forward() -> None:
    """A tick that asks to be woken in 0 s gets the next tick after the pause, not after the interval."""
    clock = _Clock()
    starts: list[float] = []

    def tick() -> float | None:
        starts.append(clock())
        return 0.0 if len(starts) == 1 else None

    loop = TickLoop(tick, interval=3600, monotonic=clock).start()
    try:
        _wait_for(lambda: len(starts) == 2, 10, "the wake-up tick")
    finally:
        assert loop.stop(timeout=10)


def test_a_worker_runs_once_per_batch_of_asks() -> None:
    """Asks made while the worker runs coalesce into one more run; a stop waits for the run in progress."""
    gate, started = threading.Event(), threading.Event()
    runs: list[int] = []
    worker = Worker(lambda: (started.set(), gate.wait(30), runs.append(1))).start()
    worker.ask()
    assert started.wait(10), "the first run did not start"
    for _ in range(50):
        worker.ask()
    gate.set()
    _wait_for(lambda: worker.runs == 2, 10, "the second run")
    assert worker.stop(timeout=10)
    assert runs == [1, 1]


class _Reading:
    """A tick that reads until the test lets it go on (``go``), then stops if the loop says it is
    interrupted, as a reconciler does at a safe point; it records whether it was interrupted."""

    def __init__(self) -> None:
        self.loop: TickLoop | None = None
        self.started = [threading.Event() for _ in range(4)]
        self.go = [threading.Event() for _ in range(4)]
        self.ended = [threading.Event() for _ in range(4)]
        self.stopped: list[bool] = []

    def __call__(self) -> None:
        i = len(self.stopped)
        self.started[i].set()
        assert self.go[i].wait(30)
        assert self.loop is not None
        stopping = self.loop.interrupting()
        self.stopped.append(stopping)
        self.ended[i].set()
        if stopping:
            raise Interrupted("asked")


def test_an_ask_while_a_tick_reads_interrupts_it_and_the_next_tick_starts_without_a_pause() -> None:
    """On a clock that never moves, a tick interrupted by an ask is followed by the next one at once (a
    pause would never end), the interrupted tick is not counted as run and its duration is not taken."""
    reading = _Reading()
    took: list[float] = []
    loop = TickLoop(reading, interval=3600, monotonic=lambda: 100.0, took=took.append)
    reading.loop = loop
    loop.start()
    try:
        assert reading.started[0].wait(10)
        loop.ask()
        reading.go[0].set()
        assert reading.started[1].wait(10), "the asked-for tick did not start at once"
        reading.go[1].set()
        assert reading.ended[1].wait(10)
    finally:
        reading.go[2].set()
        assert loop.stop(timeout=10)
    assert reading.stopped[:2] == [True, False]
    assert loop.interrupted == 1 and loop.ticks == 1 and len(took) == 1


def test_the_tick_after_an_interrupted_one_is_not_interrupted_in_turn() -> None:
    """An ask during the tick that follows an interrupted one waits for it to end: a stream of asks delays
    a tick by at most one more."""
    reading = _Reading()
    loop = TickLoop(reading, interval=3600, monotonic=lambda: 100.0)
    reading.loop = loop
    loop.start()
    try:
        assert reading.started[0].wait(10)
        loop.ask()
        reading.go[0].set()
        assert reading.started[1].wait(10)
        loop.ask()  # during the tick that follows the interrupted one
        assert not loop.interrupting()
        reading.go[1].set()
        assert reading.ended[1].wait(10)
    finally:
        assert loop.stop(timeout=10)
    assert reading.stopped == [True, False] and loop.ticks == 1
    assert not reading.started[2].is_set()  # the follow-up waits for the pause, which never ends here


def test_an_ask_during_a_tick_that_has_stopped_reading_does_not_interrupt_it() -> None:
    """A tick that no longer checks (it has begun to act) runs to its end; the ask is its follow-up, and
    the flag is cleared when that follow-up starts."""
    clock = _Clock()
    ticks = _Ticks(clock)
    ticks.gate.clear()
    loop = TickLoop(ticks, interval=3600, monotonic=clock).start()
    try:
        _wait_for(lambda: ticks.started == 1, 10, "the first tick")
        loop.ask()
        assert loop.interrupting()  # it would stop at a safe point, were it still reading
        ticks.gate.set()
        _wait_for(lambda: loop.ticks == 2 and loop.idle, 10, "the follow-up tick")
    finally:
        assert loop.stop(timeout=10)
    assert loop.interrupted == 0 and not loop.interrupting()


def test_an_ask_after_a_long_tick_waits_the_shortest_pause_not_a_tenth_of_the_tick() -> None:
    """After a tick of 50 s a poll would wait 5 s; an ask waits MIN_PAUSE."""
    clock = _Clock()
    ticks = _Ticks(clock, seconds=50.0)
    loop = TickLoop(ticks, interval=3600, monotonic=clock).start()
    try:
        _wait_for(lambda: loop.ticks == 1, 10, "the first tick")
        loop.ask()
        _wait_for(lambda: len(ticks.spans) == 2, 10, "the asked-for tick")
    finally:
        assert loop.stop(timeout=10)
    (_, first_end), (second_start, _) = ticks.spans
    assert MIN_PAUSE - 0.01 <= second_start - first_end < pause_after(50.0)
