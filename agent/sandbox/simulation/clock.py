"""The sandbox's clock: real time scaled by a speed, or a manual clock that only tests move."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


class SandboxClock:
    """The sandbox's time: real time scaled by ``speed`` (default), or a manual clock for tests.

    Both kinds can be moved forward with :meth:`advance`; a manual clock moves only then.

    >>> clock = SandboxClock(manual=True, start=datetime(2026, 1, 1, tzinfo=UTC))
    >>> clock.advance(90)
    >>> clock.now().isoformat()
    '2026-01-01T00:01:30+00:00'
    """

    def __init__(
        self,
        *,
        manual: bool = False,
        speed: float = 1.0,
        start: datetime | None = None,
        source: Callable[[], float] = time.time,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.manual = manual
        self._source = source
        self._speed = float(speed)
        self._lock = threading.Lock()
        self._base = start.timestamp() if start is not None else float(int(source()))
        self._anchor = source()  # the real time at which the clock read _base

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        """Change the speed from now on, without a jump in time."""
        if value <= 0:
            raise ValueError("speed must be positive")
        with self._lock:
            self._base, self._anchor = self._read(), self._source()
            self._speed = float(value)

    def timestamp(self) -> float:
        """Seconds since the epoch, as the sandbox sees them."""
        with self._lock:
            return self._read()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def advance(self, seconds: float) -> None:
        """Jump forward ``seconds`` (simulated seconds, whatever the speed)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._base += seconds

    def _read(self) -> float:
        if self.manual:
            return self._base
        return self._base + (self._source() - self._anchor) * self._speed
