"""Token buckets at ECS's published API limits, so the executor paces itself instead of being throttled.

ECS limits (per account and region): RegisterTaskDefinition 20 burst then 1 per second; UpdateService and
CreateService 50 burst then 5 per second; DescribeServices 100 burst then 20 per second; the task-definition
reads (DescribeTaskDefinition, ListTaskDefinitions) 50 burst then 20 per second, from one bucket. Throttling
that still happens is left to botocore's adaptive retries.

The buckets are shared by every thread of the executor: ``acquire`` *reserves* a token under a lock
(the bucket may go negative) and sleeps outside it, so N threads asking at once wait 1/rate, 2/rate, ...
and together never exceed the rate. The limits come from the agent config's ``pacing`` section
(``describeTaskDefinition`` is the bucket of all the task-definition reads).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# operation -> (burst, refill per second)
ECS_LIMITS: dict[str, tuple[float, float]] = {
    "RegisterTaskDefinition": (20, 1),
    "CreateService": (50, 5),
    "UpdateService": (50, 5),
    "DescribeServices": (100, 20),
    # "Request throttling for the Amazon ECS API", table of throttle quotas: "Task definition read actions:
    # DescribeTaskDefinition, ListTaskDefinitions, ListTaskDefinitionFamilies | 50 | 20" (bucket maximum
    # capacity, refill rate). One bucket for the three: see _SHARED.
    "DescribeTaskDefinition": (50, 20),
}
# operation -> the operation whose bucket it takes its token from (ECS counts them together)
_SHARED = {
    "ListTaskDefinitions": "DescribeTaskDefinition",
    "ListTaskDefinitionFamilies": "DescribeTaskDefinition",
}
# How many services the reconciler rolls out at once (their calls still share the buckets above).
DEFAULT_CONCURRENCY = 8

# agent config ``pacing`` keys (snake_case attributes of PacingConfig) -> operation
_CONFIG_OPERATIONS = {
    "register_task_definition": "RegisterTaskDefinition",
    "create_service": "CreateService",
    "update_service": "UpdateService",
    "describe_services": "DescribeServices",
    "describe_task_definition": "DescribeTaskDefinition",
}


def limits_from(pacing: Any) -> dict[str, tuple[float, float]]:
    """(burst, per second) by operation from an agent config's ``pacing`` section; ECS's when None."""
    if pacing is None:
        return dict(ECS_LIMITS)
    limits = dict(ECS_LIMITS)
    for key, operation in _CONFIG_OPERATIONS.items():
        bucket = getattr(pacing, key, None)
        if bucket is not None:
            limits[operation] = (float(bucket.burst), float(bucket.per_second))
    return limits


@dataclass
class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; ``delay()`` says how long until one is free."""

    capacity: float
    rate: float
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, now: float) -> float:
        """Take one token; return how many seconds the caller must wait first (0 when one is free)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Pacer:
    """Hands out permission to call an operation, waiting (through ``sleep``) when its bucket is empty."""

    def __init__(
        self,
        limits: dict[str, tuple[float, float]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._buckets = {
            op: TokenBucket(burst, rate, updated=clock())
            for op, (burst, rate) in (ECS_LIMITS if limits is None else limits).items()
        }
        self.waited = 0.0

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> Pacer:
        """A Pacer at the limits of ``config.pacing`` (an AgentConfig, or None for ECS's limits)."""
        return cls(limits_from(getattr(config, "pacing", None)), **kwargs)

    def acquire(self, operation: str) -> None:
        """Return when a call to ``operation`` may be made (at once for an operation without a limit)."""
        bucket = self._buckets.get(_SHARED.get(operation, operation))
        if bucket is None:
            return
        with self._lock:
            wait = bucket.take(self.clock())
            self.waited += wait
        if wait > 0:
            self.sleep(wait)
