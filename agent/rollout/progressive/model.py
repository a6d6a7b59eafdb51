"""The agent engine's inputs and record: what it reads on every tick and what it remembers.

The inputs (the strategy, and the observation with its wiring, task sets, traffic and hook answers) are
built by the reconciler from Git and AWS; the record keeps only what cannot be observed. Worked
examples: :mod:`agent.rollout.progressive`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from agent.plan.values import duration_seconds
from agent.rollout.windows import Gate

POLL = timedelta(seconds=5)
IN_PROGRESS, SUCCEEDED, FAILED = "in_progress", "succeeded", "failed"
STAGES = (
    "preScaleUp",
    "postScaleUp",
    "testTraffic",
    "postTestTraffic",
    "preProductionTraffic",
    "postProductionTraffic",
)
DEFAULT_HOOK_TIMEOUT = timedelta(minutes=5)
STABILIZE_TIMEOUT = timedelta(minutes=15)

Weights = tuple[tuple[str, int], ...]


# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Hook:
    """One lifecycle hook: an HTTP URL or a Lambda ARN, called at ``stage``."""

    stage: str
    url: str | None
    lambda_arn: str | None
    timeout: timedelta = DEFAULT_HOOK_TIMEOUT
    on_timeout: str = "rollback"  # "rollback" | "continue"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Hook:
        timeout = spec.get("timeout")
        return cls(
            stage=str(spec["stage"]),
            url=spec.get("url"),
            lambda_arn=spec.get("lambda"),
            timeout=timedelta(seconds=duration_seconds(timeout)) if timeout else DEFAULT_HOOK_TIMEOUT,
            on_timeout=str(spec.get("onTimeout", "rollback")),
        )


@dataclass(frozen=True)
class Strategy:
    """A DeploymentStrategy as the agent engine runs it.

    ``steps`` are the green production weights in order: canary 10 -> (10, 100); linear 25 ->
    (25, 50, 75, 100); linear 30 -> (30, 60, 90, 100); blueGreen -> (100,). ``step_bakes[i]`` is the
    bake after ``steps[i]`` for every step but the last (canary ``bake`` / linear ``stepBake``);
    ``bake`` is the final bake once green is primary.
    """

    type: str  # "blueGreen" | "linear" | "canary"
    steps: tuple[int, ...]
    step_bakes: tuple[timedelta, ...] = ()
    bake: timedelta = timedelta(0)
    alarms: tuple[str, ...] = ()  # alarm NAMES
    hooks: tuple[Hook, ...] = ()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Strategy:
        """Build from a DeploymentStrategy ``spec``: durations like ``"5m"``, alarms as names, ARNs or
        ``{name: ...}``."""
        kind = str(spec.get("type", "blueGreen"))
        steps: tuple[int, ...]
        step_bakes: tuple[timedelta, ...] = ()
        if kind == "canary":
            block = spec.get("canary") or {}
            percent = _percent(block.get("percent", 10))
            steps = (percent, 100) if percent < 100 else (100,)
            step_bakes = (_duration(block.get("bake")),) if percent < 100 else ()
        elif kind == "linear":
            block = spec.get("linear") or {}
            step = _percent(block.get("stepPercent", 10))
            steps = (*range(step, 100, step), 100)
            step_bakes = (_duration(block.get("stepBake")),) * (len(steps) - 1)
        elif kind == "blueGreen":
            steps = (100,)
        else:
            raise ValueError(f"the agent engine runs blueGreen, linear or canary, not {kind!r}")
        alarms = tuple(_alarm_name(a) for a in ((spec.get("rollbackOn") or {}).get("alarms") or ()))
        hooks = tuple(Hook.from_spec(h) for h in spec.get("hooks") or ())
        return cls(kind, steps, step_bakes, _duration(spec.get("bake")), alarms, hooks)

    def hook(self, stage: str) -> Hook | None:
        return next((h for h in self.hooks if h.stage == stage), None)


@dataclass(frozen=True)
class Wiring:
    """Where the service's traffic flows: its two target groups and the listener rules between them."""

    target_groups: tuple[str, str]  # (targetGroup ARN, alternateTargetGroup ARN)
    production_rule: str  # listener rule ARN
    test_rule: str | None = None
    container_name: str | None = None
    container_port: int | None = None


@dataclass(frozen=True)
class TaskSetView:
    """The parts of a DescribeTaskSets task set the engine reads."""

    id: str
    arn: str
    task_definition: str  # ARN
    external_id: str
    status: str  # "PRIMARY" | "ACTIVE" | "DRAINING"
    target_group: str | None
    scale: float  # percent
    running: int
    desired: int  # computedDesiredCount
    stable: bool  # stabilityStatus STEADY_STATE and running >= desired


@dataclass(frozen=True)
class HookState:
    """What one lifecycle hook answered for this rollout (the reconciler stores it per fingerprint, stage)."""

    stage: str
    status: str  # "SUCCEEDED" | "FAILED" | "IN_PROGRESS"
    first_called_at: datetime
    last_called_at: datetime
    reason: str = ""


@dataclass(frozen=True)
class Traffic:
    """Forward weights observed on the listener rules (target-group ARN -> weight)."""

    production: Mapping[str, int]
    test: Mapping[str, int] | None = None  # None when the service has no test rule


@dataclass(frozen=True)
class AgentObservation:
    """One agent-engine service as Git and AWS show it on this tick."""

    sha: str
    fingerprint: str
    target: str | None  # task-definition ARN Git asks for; None = not registered yet
    target_label: str  # "web:5" or "web:(new)"
    wiring: Wiring
    task_sets: tuple[TaskSetView, ...]
    traffic: Traffic
    alarms: Mapping[str, str] = field(default_factory=dict)  # alarm name -> ALARM | OK | INSUFFICIENT_DATA
    hooks: Mapping[str, HookState] = field(default_factory=dict)  # results for THIS rollout, by stage
    gate: Gate | None = None  # None = no windows at all
    service_in_sync: bool = True  # non-task-set service fields need no UpdateService


# --------------------------------------------------------------------------------------------- record


@dataclass(frozen=True)
class AgentRecord:
    """What the agent engine remembers about one rollout: only what cannot be observed.

    Stored under the same key as :class:`~agent.rollout.decisions.RolloutRecord`; ``from_json`` accepts a
    RolloutRecord's JSON (no ``engine`` key) as a finished rollout and ignores keys it does not know.
    """

    sha: str
    fingerprint: str
    result: str  # "in_progress" | "succeeded" | "failed"
    started_at: str  # ISO-8601
    task_definition: str | None = None  # target task-definition ARN
    reason: str = ""
    engine: str = "agent"
    step_since: str | None = None  # ISO: when the current production weight (or the primary flip) was reached
    step_weight: int | None = None  # green production weight step_since refers to (0 = none yet)
    step_phase: str | None = None  # "step" while baking a traffic step, "final" during the final bake
    blue: str | None = None  # task-definition ARN of blue when the rollout started (an abort goes back there)
    green_since: str | None = None  # ISO: when the green task set was created (stabilisation timeout)
    outcome: str = ""  # the success text to keep repeating (e.g. "rolled back to web:4")

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> AgentRecord | None:
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "engine" not in data and values.get("result") == IN_PROGRESS:
            values["result"] = SUCCEEDED  # a rolling record: its rollout is over as far as this engine knows
        values.setdefault("engine", "agent")
        for key in ("sha", "fingerprint", "result", "started_at"):
            values.setdefault(key, "")
        return cls(**values)


# ---------------------------------------------------------------------------------------------- helpers


def _duration(value: Any) -> timedelta:
    return timedelta(seconds=duration_seconds(value)) if value else timedelta(0)


def _percent(value: Any) -> int:
    """Weights on an ALB rule are integers: 0.1 % rounds up to 1, 12.5 % to 13."""
    return max(1, min(100, math.ceil(float(value))))


def _alarm_name(ref: Any) -> str:
    """An alarm reference as a name: ``{name: web-5xx}``, ``web-5xx`` or ``arn:...:alarm:web-5xx``."""
    if isinstance(ref, Mapping):
        ref = ref.get("name") or ref.get("arn") or ""
    text = str(ref)
    return text.split(":alarm:", 1)[1] if ":alarm:" in text else text
