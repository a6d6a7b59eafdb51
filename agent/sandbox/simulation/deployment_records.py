"""Service-deployment records: ECS's ServiceDeployment statuses, lifecycle stages and hook values, one
lifecycle hook run (:class:`HookRun`) and one service deployment (:class:`SimServiceDeployment`), with the
traffic steps and bake times its ``deploymentConfiguration`` asks for (ECS's documented defaults when it
does not say).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agent.sandbox.simulation.model import Json, SimDeployment

# ServiceDeploymentStatus
PENDING, IN_PROGRESS, SUCCESSFUL, STOPPED = "PENDING", "IN_PROGRESS", "SUCCESSFUL", "STOPPED"
STOP_REQUESTED = "STOP_REQUESTED"
ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS = "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"
ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED = "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"
IN_FLIGHT = (PENDING, IN_PROGRESS, STOP_REQUESTED, ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS)

# ServiceDeploymentLifecycleStage, in the order a native deployment goes through them
PRE_SCALE_UP, SCALE_UP, POST_SCALE_UP = "PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP"
TEST_TRAFFIC_SHIFT, POST_TEST_TRAFFIC_SHIFT = "TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT"
PRE_PRODUCTION_TRAFFIC_SHIFT = "PRE_PRODUCTION_TRAFFIC_SHIFT"
PRODUCTION_TRAFFIC_SHIFT = "PRODUCTION_TRAFFIC_SHIFT"
POST_PRODUCTION_TRAFFIC_SHIFT = "POST_PRODUCTION_TRAFFIC_SHIFT"
BAKE_TIME, CLEAN_UP = "BAKE_TIME", "CLEAN_UP"
HOOK_STAGES = (
    "RECONCILE_SERVICE",
    PRE_SCALE_UP,
    POST_SCALE_UP,
    TEST_TRAFFIC_SHIFT,
    POST_TEST_TRAFFIC_SHIFT,
    PRE_PRODUCTION_TRAFFIC_SHIFT,
    PRODUCTION_TRAFFIC_SHIFT,
    POST_PRODUCTION_TRAFFIC_SHIFT,
)
NO_PAUSE_STAGES = (TEST_TRAFFIC_SHIFT, PRODUCTION_TRAFFIC_SHIFT)

# DeploymentLifecycleHookStatus / targets / actions
AWAITING_ACTION, SUCCEEDED, FAILED, TIMED_OUT = "AWAITING_ACTION", "SUCCEEDED", "FAILED", "TIMED_OUT"
AWS_LAMBDA, PAUSE = "AWS_LAMBDA", "PAUSE"
CONTINUE, ROLLBACK = "CONTINUE", "ROLLBACK"
HOOK_RESULTS = (SUCCEEDED, FAILED, IN_PROGRESS)

NATIVE_STRATEGIES = ("BLUE_GREEN", "LINEAR", "CANARY")
DEFAULT_HOOK_TIMEOUT_MINUTES = 1440
MAX_HOOK_TIMEOUT_MINUTES = 20160
MAX_BAKE_MINUTES = 1440
DEFAULT_ALARM_POLL_SECONDS = 60.0
DEFAULT_CANARY = (5.0, 10)  # canaryPercent, canaryBakeTimeInMinutes (ECS's documented defaults)
DEFAULT_LINEAR = (10.0, 6)  # stepPercent, stepBakeTimeInMinutes
MAX_DESCRIBE = 20


# --------------------------------------------------------------------------------------------------
# State


@dataclass
class HookRun:
    """One lifecycle hook at one stage (a hook at PRE_PRODUCTION_TRAFFIC_SHIFT runs once per step)."""

    hook_id: str
    target_type: str
    target_arn: str | None
    stage: str
    started_at: float
    expires_at: float
    timeout_action: str
    status: str = IN_PROGRESS
    finished_at: float | None = None
    invocations: int = 0

    def render(self) -> Json:
        out: Json = {"hookId": self.hook_id, "targetType": self.target_type, "status": self.status}
        if self.target_arn:
            out["targetArn"] = self.target_arn
        out["expiresAt"] = self.expires_at
        out["timeoutAction"] = self.timeout_action
        return out


@dataclass
class SimServiceDeployment:
    """One service deployment: the simulator's target deployment, the ones it replaces, and its state."""

    arn: str
    service_arn: str
    cluster_arn: str
    strategy: str  # ROLLING | BLUE_GREEN | LINEAR | CANARY
    native: bool  # lifecycle stages and traffic driven here (False: mirrors a rolling deployment)
    config: Json  # the service's deploymentConfiguration when the deployment started
    target: SimDeployment
    sources: list[SimDeployment]
    created_at: float
    test_rule: bool = False  # the load balancer names a test listener rule
    status: str = PENDING
    status_reason: str = ""
    stage: str | None = None
    stage_since: float = 0.0
    step: int = 0  # index of the production traffic step
    weight: float = 0.0  # the target's production traffic weight
    test_weight: float = 0.0
    hooks: list[HookRun] = field(default_factory=list)  # the current stage's
    hook_log: list[HookRun] = field(default_factory=list)  # earlier stages'
    started_at: float | None = None
    finished_at: float | None = None
    stopped_at: float | None = None
    updated_at: float = 0.0
    rollback: Json | None = None
    rollback_to: SimDeployment | None = None  # the deployment a rolling rollback runs
    triggered: list[str] = field(default_factory=list)
    alarms_checked_at: float = 0.0

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT

    def steps(self) -> list[float]:
        """The target's production weights, in order: 100 for BLUE_GREEN, canary then 100, linear steps."""
        if self.strategy == "CANARY":
            canary = self.config.get("canaryConfiguration") or {}
            return [float(canary.get("canaryPercent", DEFAULT_CANARY[0])), 100.0]
        if self.strategy == "LINEAR":
            step = float((self.config.get("linearConfiguration") or {}).get("stepPercent", DEFAULT_LINEAR[0]))
            weights = [round(step * k, 1) for k in range(1, math.ceil(100 / step - 1e-9))]
            return [w for w in weights if w < 100] + [100.0]
        return [100.0]

    def step_bake_seconds(self) -> float:
        if self.strategy == "CANARY":
            canary = self.config.get("canaryConfiguration") or {}
            return 60.0 * int(canary.get("canaryBakeTimeInMinutes", DEFAULT_CANARY[1]))
        if self.strategy == "LINEAR":
            linear = self.config.get("linearConfiguration") or {}
            return 60.0 * int(linear.get("stepBakeTimeInMinutes", DEFAULT_LINEAR[1]))
        return 0.0

    def bake_seconds(self) -> float:
        return 60.0 * int(self.config.get("bakeTimeInMinutes") or 0)

    def alarm_config(self) -> Json:
        return self.config.get("alarms") or {}
