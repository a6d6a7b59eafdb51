"""Fault injection for the sandbox: make chosen AWS operations hang or fail, from tests or over HTTP.

Crash and fault tests drive the agent through the sandbox, never by patching the agent. A fault names
an operation of any service the sandbox serves (``UpdateService``, ``ModifyRule``, ``Invoke``...; ``*``
for every one):

* ``hold``: the request waits (the agent is stuck inside that call) until the fault is cleared, then gets
  a 503 without reaching AWS. A test SIGKILLs the agent while it is held: a crash exactly between two
  calls.
* ``error``: the request fails with ``code``/``status`` (e.g. ThrottlingException 400, or 503), for a
  ``count`` of requests or at a ``rate`` (seeded, so runs repeat).
* ``delay``: the request waits ``seconds``, then is served as usual (a slow AWS endpoint).

``after`` lets that many matching requests through untouched first (hold the third ModifyRule: after=2).
``served`` counts, per operation, every request that went on to AWS (none held or failed by a fault), so
a test can tell how many times an operation really ran across an agent's crash and restart.

Over HTTP: ``POST /_sandbox/faults {"operation": "UpdateService", "action": "hold"}``,
``GET /_sandbox/faults`` (``held`` = requests waiting now, ``hits`` per operation), ``DELETE
/_sandbox/faults`` (clears every fault and releases held requests).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .overlay import EcsError

if TYPE_CHECKING:
    from .overlay import EcsOverlay

HOLD_LIMIT_SECONDS = 120.0  # a held request gives up by itself, so nothing hangs for ever


@dataclass
class Fault:
    operation: str  # AWS operation name (any service), or "*"
    action: str = "error"  # "hold" | "error"
    code: str = "ServiceUnavailableException"
    status: int = 503
    message: str = "injected by the sandbox"
    count: int | None = None  # requests it still applies to; None: until cleared
    rate: float = 1.0  # share of matching requests it applies to
    after: int = 0  # matching requests still let through before it applies
    seconds: float = 0.0  # how long a "delay" makes the request wait

    def __post_init__(self) -> None:
        if self.action not in ("hold", "error", "delay"):
            raise ValueError(f"action must be hold, error or delay, not {self.action!r}")
        if not 0.0 <= self.seconds <= HOLD_LIMIT_SECONDS:
            raise ValueError(f"seconds must be between 0 and {HOLD_LIMIT_SECONDS:.0f}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if not isinstance(self.after, int) or self.after < 0:
            raise ValueError("after must be a whole number >= 0")


class Faults:
    """The active faults of one sandbox (thread-safe)."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._release = threading.Event()
        self._rng = random.Random(seed)
        self.held = 0
        self.hits: Counter[str] = Counter()
        self.served: Counter[str] = Counter()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._release.clear()
            self._faults.append(fault)

    def clear(self) -> None:
        """Remove every fault and let held requests go (they fail with 503)."""
        with self._lock:
            self._faults.clear()
            self._release.set()

    def before_request(self, operation: str) -> EcsError | None:
        """Called for each AWS request before it is served: the error to answer with, if any."""
        with self._lock:
            fault = next((f for f in self._faults if f.operation in ("*", operation)), None)
            if fault is not None and fault.after > 0:
                fault.after -= 1
                fault = None
            if fault is None or self._rng.random() >= fault.rate:
                self.served[operation] += 1
                return None
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
            self.hits[operation] += 1
            release = self._release
            if fault.action == "hold":
                self.held += 1
            if fault.action == "delay":
                self.served[operation] += 1
        if fault.action == "delay":
            time.sleep(fault.seconds)  # the slow endpoint itself: the request is then served
            return None
        if fault.action == "hold":
            release.wait(HOLD_LIMIT_SECONDS)
            with self._lock:
                self.held -= 1
            return EcsError("ServiceUnavailableException", "request held by the sandbox, then dropped", 503)
        return EcsError(fault.code, fault.message, fault.status)

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": [asdict(f) for f in self._faults],
                "held": self.held,
                "hits": dict(self.hits),
                "served": dict(self.served),
            }

    def install(self, overlay: EcsOverlay) -> None:
        overlay.pre_request.append(self.before_request)
        overlay.control_routes.extend(
            [
                ("GET", re.compile(r"^/_sandbox/faults$"), lambda m, body: self.describe()),
                ("POST", re.compile(r"^/_sandbox/faults$"), self._post),
                ("DELETE", re.compile(r"^/_sandbox/faults$"), self._delete),
            ]
        )

    def _post(self, match: re.Match[str], body: dict[str, Any]) -> dict[str, Any]:
        self.add(Fault(**body))
        return self.describe()

    def _delete(self, match: re.Match[str], body: dict[str, Any]) -> dict[str, Any]:
        self.clear()
        return self.describe()
