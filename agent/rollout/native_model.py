"""What the ``ecs`` engine's follower (agent.rollout.native) reads, remembers and asks for: the service
deployment as DescribeServiceDeployments shows it, the strategy's parts ECS does not run, one tick's
observation, the stored record, and the two ServiceDeployment actions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from agent.plan.services import alarm_name, duration_seconds

from .windows import OPEN, Gate

POLL = timedelta(seconds=5)  # while ECS scales, shifts or runs hooks
BAKE_POLL = timedelta(seconds=30)  # while ECS bakes: the alarms are read at least this often
START_GRACE = timedelta(minutes=2)  # how long a deployment may take to appear after UpdateService
IN_PROGRESS, SUCCEEDED, FAILED = "in_progress", "succeeded", "failed"

# ServiceDeploymentStatus values that are still moving
ECS_IN_FLIGHT = ("PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")
ROLLING_BACK = ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")
_KIND = {"blueGreen": "blue/green", "canary": "canary", "linear": "linear"}


# --------------------------------------------------------------------------------------------------
# What the engine reads


@dataclass(frozen=True)
class Hook:
    """A lifecycle hook of the current stage (DescribeServiceDeployments ``lifecycleHookDetails``)."""

    id: str
    target_type: str  # AWS_LAMBDA | PAUSE
    status: str  # AWAITING_ACTION | IN_PROGRESS | SUCCEEDED | FAILED | TIMED_OUT
    target_arn: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Deployment:
    """One service deployment, the parts the engine reads."""

    arn: str
    status: str  # ServiceDeploymentStatus
    stage: str | None = None  # lifecycleStage
    reason: str = ""  # statusReason (or the rollback's reason)
    weight: float = 0.0  # green's requested production traffic weight
    test_weight: float = 0.0
    running: int = 0  # green's running / requested tasks
    requested: int = 0
    hooks: tuple[Hook, ...] = ()
    triggered_alarms: tuple[str, ...] = ()
    created_at: datetime | None = None

    @property
    def in_flight(self) -> bool:
        return self.status in ECS_IN_FLIGHT

    @property
    def paused_hook(self) -> Hook | None:
        """The PAUSE hook waiting for ContinueServiceDeployment, if the deployment is held at one."""
        return next(
            (h for h in self.hooks if h.target_type == "PAUSE" and h.status == "AWAITING_ACTION"), None
        )


@dataclass(frozen=True)
class Strategy:
    """The parts of a DeploymentStrategy spec the follower needs (ECS runs the rest)."""

    type: str  # blueGreen | linear | canary
    steps: tuple[float, ...]  # green's production weights in order
    step_bake: timedelta  # canary bake / linear stepBake
    bake: timedelta  # final bake
    alarms: tuple[str, ...] = ()  # alarm names

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Strategy:
        """``{type: canary, canary: {percent: 10, bake: 5m}, bake: 10m, rollbackOn: {alarms: [...]}}``."""
        stype = str(spec.get("type", "blueGreen"))
        steps: tuple[float, ...] = (100.0,)
        step_bake = 0
        if stype == "canary":
            canary = spec.get("canary") or {}
            steps = (float(canary.get("percent", 5)), 100.0)
            step_bake = duration_seconds(canary.get("bake", 0))
        elif stype == "linear":
            linear = spec.get("linear") or {}
            step = float(linear.get("stepPercent", 10))
            count = math.ceil(100 / step - 1e-9)
            steps = (*(w for w in (round(step * k, 1) for k in range(1, count)) if w < 100), 100.0)
            step_bake = duration_seconds(linear.get("stepBake", 0))
        alarms = tuple(str(alarm_name(a)) for a in (spec.get("rollbackOn") or {}).get("alarms") or ())
        return cls(
            type=stype,
            steps=steps,
            step_bake=timedelta(seconds=step_bake),
            bake=timedelta(seconds=duration_seconds(spec.get("bake", 0))),
            alarms=alarms,
        )

    @property
    def kind(self) -> str:
        return _KIND.get(self.type, self.type)


@dataclass(frozen=True)
class Observation:
    """One ecs-engine service on this tick."""

    sha: str
    fingerprint: str
    in_sync: bool  # the plan changes nothing for this service
    target: str | None  # family:revision Git asks for ("web:(new)" before registration)
    current: str | None  # family:revision the service runs now
    deployment: Deployment | None = None  # the newest in flight, else the record's own
    gate: Gate = OPEN
    alarms: Mapping[str, str] = field(default_factory=dict)  # alarm name -> StateValue
    tasks: tuple[int, int] | None = None  # the service's (runningCount, desiredCount)
    source: str | None = None  # family:revision of the older deployment still listed (blue), if any


# --------------------------------------------------------------------------------------------------
# What the engine remembers, and asks for


@dataclass(frozen=True)
class NativeRecord:
    """What the agent remembers about one ecs-engine service (stored under ``rollout/<cluster>/<service>``,
    like the rolling engine's RolloutRecord, whose JSON it reads too)."""

    sha: str
    fingerprint: str
    result: str  # in_progress | succeeded | failed
    started_at: str  # ISO-8601
    task_definition: str | None = None  # family:revision rolled out
    reason: str = ""
    engine: str = "ecs"
    source: str | None = None  # family:revision running when this content was applied (blue)
    deployment: str | None = None  # the service deployment followed
    applied: bool = False  # UpdateService sent for this content
    revert: bool = False  # this content is the source of the deployment it stopped: a rollback
    superseded: str | None = None  # the sha whose rollout this one stopped
    stage: str | None = None
    stage_since: str | None = None
    step_weight: float | None = None
    step_since: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> NativeRecord | None:
        """Ignores keys it does not know; a rolling RolloutRecord reads as a rollout already applied."""
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "engine" not in data:
            values["applied"] = True
        values["engine"] = "ecs"
        return cls(**values)


@dataclass(frozen=True)
class StopDeployment:
    """StopServiceDeployment(stopType ROLLBACK)."""

    deployment: str
    reason: str


@dataclass(frozen=True)
class ContinueDeployment:
    """ContinueServiceDeployment at a paused hook: CONTINUE or ROLLBACK."""

    deployment: str
    hook_id: str
    action: str = "CONTINUE"
