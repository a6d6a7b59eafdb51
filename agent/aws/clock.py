"""The agent's clock when its AWS endpoint is a sandbox whose clock runs faster than real time.

``ecs-gitops sandbox up --clock-speed 20`` runs the simulated ECS 20 times faster; bakes, hook timeouts and
windows are the agent's to time, so an agent pointed at that sandbox reads the sandbox's time
(``GET /_sandbox/clock``: ``{"now", "speed", ...}``) instead of the machine's. It asks again at most every
``refresh`` real seconds and extrapolates with the speed in between, so a ``clock/advance`` is seen
within that time. Any other endpoint (real AWS, a loopback endpoint that is not a sandbox) keeps the
machine's clock. Only an HTTP request: nothing of agent.sandbox is imported.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

REFRESH_SECONDS = 0.5
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _read(endpoint: str, timeout: float = 2.0) -> tuple[datetime, float] | None:
    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/_sandbox/clock", timeout=timeout) as response:
            data = json.loads(response.read())
        speed = data.get("speed")
        return datetime.fromisoformat(data["now"]), 1.0 if speed is None else float(speed)
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SandboxTime:
    """A clock reading a sandbox's time; call it for the current datetime."""

    def __init__(self, endpoint: str, now: datetime, speed: float, refresh: float = REFRESH_SECONDS) -> None:
        self.endpoint = endpoint
        self.speed = speed
        self.refresh = refresh
        self._lock = threading.Lock()
        self._base, self._anchor = now, time.monotonic()

    def __call__(self) -> datetime:
        with self._lock:
            elapsed = time.monotonic() - self._anchor
            if elapsed >= self.refresh:
                read = _read(self.endpoint)
                if read is not None:
                    (self._base, self.speed), self._anchor = read, time.monotonic()
                    return self._base
            return self._base + timedelta(seconds=elapsed * self.speed)


def endpoint_clock(endpoint: str | None) -> SandboxTime | None:
    """The sandbox's clock when ``endpoint`` is a loopback sandbox whose clock is not real time, else None."""
    if not endpoint or urlsplit(endpoint).hostname not in _LOOPBACK:
        return None
    read = _read(endpoint)
    if read is None:
        return None
    now, speed = read
    if speed == 1.0 and abs((now - datetime.now(UTC)).total_seconds()) < 5:
        return None  # real time: the machine's clock says the same
    return SandboxTime(endpoint, now, speed)
