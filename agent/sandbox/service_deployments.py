"""ECS service deployments in the sandbox: the four ServiceDeployment APIs and the native BLUE_GREEN /
LINEAR / CANARY lifecycle, moved forward by the simulator's clock.

moto answers ``ListServiceDeployments``, ``DescribeServiceDeployments``, ``StopServiceDeployment`` and
``ContinueServiceDeployment`` with "not implemented". :class:`ServiceDeployments` serves them from the
:class:`~agent.sandbox.simulator.Simulator`'s own records, in exactly the shapes of botocore's model
(every reply is checked against it by the tests), and drives the ECS-native strategies.

Every deployment of an ECS-controller service gets a service deployment (ARN
``...:service-deployment/<cluster>/<service>/<id>``) whose target and source service revisions are the
simulator's deployments (``...:service-revision/<cluster>/<service>/<id>``):

* **ROLLING** (and the first deployment of a service, which has nothing to shift traffic from): the
  record mirrors the simulator's rolling deployment: ``IN_PROGRESS`` -> ``SUCCESSFUL``; a circuit-breaker
  failure -> ``ROLLBACK_IN_PROGRESS`` -> ``ROLLBACK_SUCCESSFUL`` (or ``STOPPED`` without rollback); a newer
  deployment -> ``STOPPED``.
* **BLUE_GREEN / LINEAR / CANARY** with a blue revision running: the record owns the deployment, one
  simulator tick (``T`` = ``task_start_seconds``) at a time. ``PENDING`` until the first tick, then
  ``lifecycleStage`` PRE_SCALE_UP -> SCALE_UP (one green task per tick; the blue tasks keep running) ->
  POST_SCALE_UP -> TEST_TRAFFIC_SHIFT (green gets 100 % of test traffic when the load balancer names a
  ``testListenerRule``) -> POST_TEST_TRAFFIC_SHIFT -> PRE_PRODUCTION_TRAFFIC_SHIFT ->
  PRODUCTION_TRAFFIC_SHIFT, once per traffic step: BLUE_GREEN 100; CANARY ``canaryPercent`` then 100;
  LINEAR ``stepPercent``, twice that, ... 100. A step below 100 stays ``canaryBakeTimeInMinutes`` /
  ``stepBakeTimeInMinutes`` before the next PRE_PRODUCTION_TRAFFIC_SHIFT (so hooks there run before
  every step, as ECS documents; PRE_PRODUCTION_TRAFFIC_SHIFT is only a hook stage, so the deployment
  reports ``lifecycleStage`` PRODUCTION_TRAFFIC_SHIFT meanwhile) -> POST_PRODUCTION_TRAFFIC_SHIFT ->
  BAKE_TIME (``bakeTimeInMinutes``) -> CLEAN_UP (the blue tasks stop) -> ``SUCCESSFUL`` on the next
  tick. Stages with nothing to wait for pass within the same tick.
* **Lifecycle hooks** (``deploymentConfiguration.lifecycleHooks``) start when their stage starts and are
  listed in ``lifecycleHookDetails`` while it lasts. An ``AWS_LAMBDA`` hook is ``IN_PROGRESS`` for one
  tick, then answers what the test set with :meth:`ServiceDeployments.set_hook_result` (or ``POST
  /_sandbox/hooks``): ``SUCCEEDED`` (the default), ``FAILED`` (rolls back) or ``IN_PROGRESS`` (asked again
  every tick). A ``PAUSE`` hook is ``AWAITING_ACTION`` until ContinueServiceDeployment (``CONTINUE`` moves
  on at the next tick, ``ROLLBACK`` rolls back). Either kind is ``TIMED_OUT`` at ``expiresAt``
  (``timeoutInMinutes``, default 1440) and then takes its ``timeoutAction`` (default ``ROLLBACK``).
* **Alarms** (``deploymentConfiguration.alarms`` with ``enable``): ECS reads their CloudWatch state every
  ``alarm_poll_seconds`` (default 60 s) from the start of the deployment until BAKE_TIME ends; one in
  ALARM with ``rollback`` on rolls the deployment back (``alarms.status`` TRIGGERED).
* **Rollback** (alarm, failed or timed-out hook, ContinueServiceDeployment ROLLBACK, StopServiceDeployment
  ROLLBACK, green tasks that fail to start ``failure_threshold`` times): ``ROLLBACK_REQUESTED`` at once;
  the next tick ``ROLLBACK_IN_PROGRESS`` with all traffic back on blue; the tick after that the green
  tasks are stopped, blue is the PRIMARY deployment again and the record is ``ROLLBACK_SUCCESSFUL``.
  Once CLEAN_UP has started there is no blue to go back to: StopServiceDeployment answers
  ConflictException. ``stopType`` ABORT stops the deployment where it is (``STOPPED`` on the next tick).

CreateService and UpdateService are checked like ECS checks them (:func:`check_deployment_request`):
the circuit breaker only with ROLLING, step and canary percentages in range and multiples of 0.1, bake
times 0-1440 minutes, lifecycle hooks well formed (a PAUSE hook neither at TEST_TRAFFIC_SHIFT nor at
PRODUCTION_TRAFFIC_SHIFT; a Lambda hook with its ARN and ``roleArn``), and load balancers with their
``advancedConfiguration`` for the traffic-shifting strategies.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.sandbox.overlay import Call, EcsError, Reply, conform, merge_service

if TYPE_CHECKING:
    from agent.sandbox.overlay import EcsOverlay
    from agent.sandbox.simulator import SimDeployment, SimService, Simulator

Json = dict[str, Any]

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
# Request checks (called by the overlay's CreateService / UpdateService handlers)


def _tenths(value: float) -> bool:
    return abs(value * 10 - round(value * 10)) < 1e-6


def check_deployment_request(params: Json, stored: Json | None = None) -> None:
    """Reject a CreateService/UpdateService ``deploymentConfiguration`` ECS would reject.

    ``stored`` is what the service already has (UpdateService may send only part of it).
    """
    stored = stored or {}
    config = params.get("deploymentConfiguration")
    if config is None:
        config = stored.get("deploymentConfiguration") or {}
    strategy = config.get("strategy") or "ROLLING"

    def bad(message: str) -> EcsError:
        return EcsError("InvalidParameterException", message)

    breaker = config.get("deploymentCircuitBreaker") or {}
    if strategy != "ROLLING" and breaker.get("enable"):
        raise bad("The deployment circuit breaker can only be used with the ROLLING deployment strategy.")
    if strategy != "LINEAR" and config.get("linearConfiguration") is not None:
        raise bad("linearConfiguration is only valid with the LINEAR deployment strategy.")
    if strategy != "CANARY" and config.get("canaryConfiguration") is not None:
        raise bad("canaryConfiguration is only valid with the CANARY deployment strategy.")
    if strategy == "BLUE_GREEN" and config.get("bakeTimeInMinutes") is None:
        raise bad("bakeTimeInMinutes is required with the BLUE_GREEN deployment strategy.")
    bakes = [("bakeTimeInMinutes", config.get("bakeTimeInMinutes"))]
    linear = config.get("linearConfiguration") or {}
    canary = config.get("canaryConfiguration") or {}
    bakes += [("stepBakeTimeInMinutes", linear.get("stepBakeTimeInMinutes"))]
    bakes += [("canaryBakeTimeInMinutes", canary.get("canaryBakeTimeInMinutes"))]
    for name, value in bakes:
        if value is not None and not 0 <= int(value) <= MAX_BAKE_MINUTES:
            raise bad(f"{name} must be between 0 and {MAX_BAKE_MINUTES} minutes.")
    step = linear.get("stepPercent")
    if step is not None and not (3.0 <= float(step) <= 100.0 and _tenths(float(step))):
        raise bad("stepPercent must be a multiple of 0.1 between 3.0 and 100.0.")
    percent = canary.get("canaryPercent")
    if percent is not None and not (0.1 <= float(percent) <= 100.0 and _tenths(float(percent))):
        raise bad("canaryPercent must be a multiple of 0.1 between 0.1 and 100.0.")
    for hook in config.get("lifecycleHooks") or []:
        _check_hook(hook, bad)
    if strategy in NATIVE_STRATEGIES:
        balancers = params.get("loadBalancers")
        if balancers is None:
            balancers = stored.get("loadBalancers") or []
        connect = params.get("serviceConnectConfiguration") or stored.get("serviceConnectConfiguration")
        if not balancers and not connect:
            raise bad(f"The {strategy} deployment strategy needs a load balancer or Service Connect.")
        for lb in balancers:
            advanced = lb.get("advancedConfiguration") or {}
            missing = [
                k
                for k in ("alternateTargetGroupArn", "productionListenerRule", "roleArn")
                if not advanced.get(k)
            ]
            if missing:
                raise bad(
                    f"The {strategy} deployment strategy needs loadBalancers[].advancedConfiguration with "
                    f"{', '.join(missing)}."
                )


def _check_hook(hook: Json, bad: Callable[[str], EcsError]) -> None:
    target = hook.get("targetType") or AWS_LAMBDA
    stages = hook.get("lifecycleStages") or []
    if not stages:
        raise bad("lifecycleStages is required for a deployment lifecycle hook.")
    for stage in stages:
        if stage not in HOOK_STAGES:
            raise bad(f"{stage} is not a lifecycle stage a hook can run at.")
        if target == PAUSE and stage in NO_PAUSE_STAGES:
            raise bad(f"PAUSE hooks cannot be configured at the {stage} stage.")
    if target == AWS_LAMBDA and not hook.get("hookTargetArn"):
        raise bad("hookTargetArn is required for an AWS_LAMBDA lifecycle hook.")
    if target == AWS_LAMBDA and not hook.get("roleArn"):
        raise bad("roleArn is required for an AWS_LAMBDA lifecycle hook.")
    if target == PAUSE and hook.get("hookTargetArn"):
        raise bad("hookTargetArn is not applicable to a PAUSE lifecycle hook.")
    timeout = (hook.get("timeoutConfiguration") or {}).get("timeoutInMinutes")
    if timeout is not None and not 1 <= int(timeout) <= MAX_HOOK_TIMEOUT_MINUTES:
        raise bad(f"timeoutInMinutes must be between 1 and {MAX_HOOK_TIMEOUT_MINUTES}.")


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


# --------------------------------------------------------------------------------------------------
# The service deployments of one simulator


class ServiceDeployments:
    """Records, drives and serves service deployments for a :class:`~agent.sandbox.simulator.Simulator`."""

    def __init__(self, simulator: Simulator, alarm_poll_seconds: float = DEFAULT_ALARM_POLL_SECONDS) -> None:
        self.sim = simulator
        self.alarm_poll_seconds = float(alarm_poll_seconds)
        self.reset()

    def reset(self) -> None:
        self.by_arn: dict[str, SimServiceDeployment] = {}
        self.by_service: dict[str, list[SimServiceDeployment]] = {}  # service ARN -> oldest first
        self.hook_results: dict[tuple[str, str | None], str] = {}  # (hook target ARN, stage|None) -> result
        self.invocations: list[Json] = []  # every Lambda hook invocation, for tests and `state`

    # -- wiring ----------------------------------------------------------------------------------

    def install(self, overlay: EcsOverlay) -> None:
        for operation in ("CreateService", "UpdateService"):
            overlay.handlers[operation] = self._checked(overlay.handlers[operation])
        for operation, handler in {
            "ListServiceDeployments": self.list_service_deployments,
            "DescribeServiceDeployments": self.describe_service_deployments,
            "StopServiceDeployment": self.stop_service_deployment,
            "ContinueServiceDeployment": self.continue_service_deployment,
        }.items():
            overlay.handlers[operation] = handler

    def routes(self) -> list[tuple[str, re.Pattern[str], Callable[[re.Match[str], Json], Json]]]:
        return [("POST", re.compile(r"^/_sandbox/hooks$"), self._control_hooks)]

    # -- test controls -----------------------------------------------------------------------------

    def set_hook_result(self, target_arn: str, status: str, stage: str | None = None) -> None:
        """What the Lambda ``target_arn`` answers (at ``stage``, or at every stage): SUCCEEDED, FAILED
        or IN_PROGRESS. Unset hooks succeed."""
        if status not in HOOK_RESULTS:
            raise ValueError(f"status must be one of {', '.join(HOOK_RESULTS)}")
        if stage is not None and stage not in HOOK_STAGES:
            raise ValueError(f"stage must be one of {', '.join(HOOK_STAGES)}")
        with self.sim.lock:
            self.sim.catch_up()
            self.hook_results[(target_arn, stage)] = status

    def _control_hooks(self, _match: re.Match[str], body: Json) -> Json:
        unknown = set(body) - {"target", "status", "stage"}
        if unknown or not isinstance(body.get("target"), str) or not isinstance(body.get("status"), str):
            raise ValueError(
                'expected {"target": <Lambda ARN>, "status": SUCCEEDED|FAILED|IN_PROGRESS, "stage"?}'
            )
        self.set_hook_result(body["target"], body["status"], body.get("stage"))
        return {"target": body["target"], "status": body["status"], "stage": body.get("stage")}

    def state(self, service_arn: str) -> list[Json]:
        return [self.render(d) for d in reversed(self.by_service.get(service_arn, []))]

    # -- called by the simulator -----------------------------------------------------------------

    def started(
        self, service: SimService, deployment: SimDeployment, sources: list[SimDeployment], at: float
    ) -> None:
        """A new deployment of an ECS-controller service: record it (and stop the one it supersedes)."""
        config = copy.deepcopy(service.deployment_configuration)
        strategy = config.get("strategy") or "ROLLING"
        running = [s for s in sources if s.running > 0]
        native = strategy in NATIVE_STRATEGIES and bool(running)
        for earlier in self.by_service.get(service.arn, []):
            if earlier.status in (PENDING, IN_PROGRESS, STOP_REQUESTED):
                self._stop(earlier, "Service deployment stopped because a newer deployment started.", at)
        deployment.revision_arn = self._revision_arn(service)
        record = SimServiceDeployment(
            arn=self._arn(service, "service-deployment"),
            service_arn=service.arn,
            cluster_arn=service.cluster_arn,
            strategy=strategy,
            native=native,
            config=config,
            target=deployment,
            sources=running if native else list(sources),
            created_at=at,
            updated_at=at,
            test_rule=any(
                (lb.get("advancedConfiguration") or {}).get("testListenerRule")
                for lb in service.load_balancers
            ),
        )
        if not native:  # a rolling deployment (or the first one) starts at once
            record.status, record.started_at = IN_PROGRESS, at
            record.weight = 100.0
        self.by_arn[record.arn] = record
        self.by_service.setdefault(service.arn, []).append(record)

    def current(self, service: SimService) -> SimServiceDeployment | None:
        """The native deployment in flight on this service, if any (the rolling tick leaves it alone)."""
        for record in reversed(self.by_service.get(service.arn, [])):
            if record.native and record.in_flight:
                return record
        return None

    def completed(self, service: SimService, deployment: SimDeployment, at: float) -> None:
        """A rolling deployment reached its desired count (or a rolling rollback did)."""
        for record in self.by_service.get(service.arn, []):
            if record.native:
                continue
            if record.target is deployment and record.status == IN_PROGRESS:
                self._finish(
                    record, SUCCESSFUL, f"Service deployment {record.arn.rsplit('/', 1)[-1]} completed.", at
                )
            elif record.rollback_to is deployment and record.status == ROLLBACK_IN_PROGRESS:
                self._finish(record, ROLLBACK_SUCCESSFUL, record.status_reason, at)

    def failed(
        self, service: SimService, deployment: SimDeployment, rollback: SimDeployment | None, at: float
    ) -> None:
        """The circuit breaker failed a rolling deployment (and, with rollback on, started ``rollback``)."""
        for record in self.by_service.get(service.arn, []):
            if record.target is deployment and record.status == IN_PROGRESS:
                reason = "Service deployment failed: the circuit breaker detected tasks failing to start."
                if rollback is None:
                    record.status, record.stopped_at = STOPPED, at
                    record.status_reason, record.updated_at = reason, at
                    continue
                record.rollback_to = rollback
                rollback.revision_arn = deployment_revision(rollback, service)
                self._roll_back(record, reason.replace("failed:", "rolled back because"), at)
                record.status = ROLLBACK_IN_PROGRESS

    def has_work(self, service: SimService) -> bool:
        return self.current(service) is not None

    # -- the native lifecycle --------------------------------------------------------------------

    def tick(self, service: SimService, record: SimServiceDeployment, at: float) -> None:
        """One simulator tick of a native deployment (see the module docstring)."""
        if record.status == PENDING:
            record.status, record.started_at = IN_PROGRESS, at
            self._enter(service, record, PRE_SCALE_UP, at)
        if record.status == ROLLBACK_REQUESTED:
            record.status = ROLLBACK_IN_PROGRESS
            record.weight = record.test_weight = 0.0
            record.updated_at = at
            self.sim._event(
                service,
                at,
                f"(service-deployment {_short(record.arn)}) rolling back: all traffic on the previous one.",
            )
            return
        if record.status == ROLLBACK_IN_PROGRESS:
            self._finish_rollback(service, record, at)
            return
        if record.status == STOP_REQUESTED:
            self._stop(
                record,
                record.status_reason or "Service deployment stopped by a StopServiceDeployment request.",
                at,
            )
            return
        if self._alarm_triggered(service, record, at):
            return
        for _ in range(
            4 * len(HOOK_STAGES) + 4 * len(record.steps())
        ):  # stages with nothing to wait for pass at once
            if not record.in_flight or not self._advance(service, record, at):
                break

    def _advance(self, service: SimService, record: SimServiceDeployment, at: float) -> bool:
        """Work on the current stage; True when the deployment moved to another stage this tick."""
        stage = record.stage
        if stage == CLEAN_UP:
            record.target.rollout_state = "COMPLETED"
            record.target.reason = f"ECS deployment {record.target.id} completed."
            record.target.updated_at = at
            service.last_completed = record.target
            service.deployments = [d for d in service.deployments if d is record.target or d.running > 0]
            for gone in record.sources:
                if gone.status != "INACTIVE":
                    self.sim._finish(service, gone, at)
            self._finish(record, SUCCESSFUL, f"Service deployment {_short(record.arn)} completed.", at)
            self.sim._event(service, at, f"(deployment {record.target.id}) deployment completed.")
            self.sim._event(service, at, "has reached a steady state.")
            return False
        hooks = self._hooks(service, record, at)
        if hooks == "rollback" or hooks == "wait":
            return False
        if stage == PRE_SCALE_UP:
            return self._enter(service, record, SCALE_UP, at)
        if stage == SCALE_UP:
            return self._scale_up(service, record, at)
        if stage == POST_SCALE_UP:
            return self._enter(service, record, TEST_TRAFFIC_SHIFT, at)
        if stage == TEST_TRAFFIC_SHIFT:
            return self._enter(service, record, POST_TEST_TRAFFIC_SHIFT, at)
        if stage == POST_TEST_TRAFFIC_SHIFT:
            return self._enter(service, record, PRE_PRODUCTION_TRAFFIC_SHIFT, at)
        if stage == PRE_PRODUCTION_TRAFFIC_SHIFT:
            return self._enter(service, record, PRODUCTION_TRAFFIC_SHIFT, at)
        if stage == PRODUCTION_TRAFFIC_SHIFT:
            if record.weight < 100.0:
                if at < record.stage_since + record.step_bake_seconds():
                    return False
                record.step += 1
                return self._enter(service, record, PRE_PRODUCTION_TRAFFIC_SHIFT, at)
            return self._enter(service, record, POST_PRODUCTION_TRAFFIC_SHIFT, at)
        if stage == POST_PRODUCTION_TRAFFIC_SHIFT:
            return self._enter(service, record, BAKE_TIME, at)
        if stage == BAKE_TIME:
            if at < record.stage_since + record.bake_seconds():
                return False
            self._enter(service, record, CLEAN_UP, at)
            stopped = sum(d.running for d in record.sources)
            for source in record.sources:
                source.running, source.updated_at = 0, at
            if stopped:
                self.sim._event(
                    service, at, f"has stopped {stopped} running tasks: {self.sim._task_ids(stopped)}."
                )
            return False
        return False

    def _enter(self, service: SimService, record: SimServiceDeployment, stage: str, at: float) -> bool:
        record.hook_log.extend(record.hooks)
        record.hooks = []
        record.stage, record.stage_since, record.updated_at = stage, at, at
        if stage == TEST_TRAFFIC_SHIFT and record.test_rule:
            record.test_weight = 100.0
        if stage == PRODUCTION_TRAFFIC_SHIFT:
            steps = record.steps()
            record.weight = steps[min(record.step, len(steps) - 1)]
            self.sim._event(
                service,
                at,
                f"(service-deployment {_short(record.arn)}) production traffic: {_percent(record.weight)} % "
                "on the new revision.",
            )
        for hook in record.config.get("lifecycleHooks") or []:
            if stage not in (hook.get("lifecycleStages") or []):
                continue
            timeout = hook.get("timeoutConfiguration") or {}
            target = hook.get("targetType") or AWS_LAMBDA
            record.hooks.append(
                HookRun(
                    hook_id=self.sim._uuid(),
                    target_type=target,
                    target_arn=hook.get("hookTargetArn") if target == AWS_LAMBDA else None,
                    stage=stage,
                    started_at=at,
                    expires_at=at
                    + 60.0 * int(timeout.get("timeoutInMinutes") or DEFAULT_HOOK_TIMEOUT_MINUTES),
                    timeout_action=timeout.get("action") or ROLLBACK,
                    status=AWAITING_ACTION if target == PAUSE else IN_PROGRESS,
                )
            )
        return True

    def _hooks(self, service: SimService, record: SimServiceDeployment, at: float) -> str:
        """ "done", "wait" or "rollback" for the current stage's hooks."""
        waiting = False
        for hook in record.hooks:
            if hook.status in (IN_PROGRESS, AWAITING_ACTION) and at >= hook.expires_at:
                hook.status, hook.finished_at = TIMED_OUT, at
                record.updated_at = at
            if hook.status == IN_PROGRESS and hook.target_type == AWS_LAMBDA and at > hook.started_at:
                hook.invocations += 1
                self.invocations.append(
                    {
                        "invokedAt": at,
                        "serviceDeploymentArn": record.arn,
                        "hookId": hook.hook_id,
                        "targetArn": hook.target_arn,
                        "stage": hook.stage,
                    }
                )
                result = self.hook_results.get((hook.target_arn or "", hook.stage))
                result = result or self.hook_results.get((hook.target_arn or "", None)) or SUCCEEDED
                if result != IN_PROGRESS:
                    hook.status, hook.finished_at = result, at
                    record.updated_at = at
            if hook.status == FAILED or (hook.status == TIMED_OUT and hook.timeout_action == ROLLBACK):
                what = "failed" if hook.status == FAILED else "timed out"
                self._roll_back(
                    record,
                    f"Service deployment rolled back because the lifecycle hook {hook.hook_id} at "
                    f"{hook.stage} {what}.",
                    at,
                )
                return "rollback"
            if hook.status in (IN_PROGRESS, AWAITING_ACTION):
                waiting = True
        return "wait" if waiting else "done"

    def _scale_up(self, service: SimService, record: SimServiceDeployment, at: float) -> bool:
        green = record.target
        if green.running < service.desired:
            if self.sim._broken(green.images):
                green.failed += 1
                green.updated_at = at
                self.sim._event(
                    service,
                    at,
                    f"(deployment {green.id}) task {self.sim._task_ids(1)[6:-1]} failed to start.",
                )
                if green.failed >= self.sim_failure_threshold(service.desired):
                    self._roll_back(
                        record,
                        "Service deployment rolled back because the new tasks failed to start.",
                        at,
                    )
                return False
            green.running += 1
            green.updated_at = at
            self.sim._event(service, at, f"has started 1 tasks: {self.sim._task_ids(1)}.")
        elif green.running > service.desired:
            green.running, green.updated_at = service.desired, at
        if green.running < service.desired:
            return False
        return self._enter(service, record, POST_SCALE_UP, at)

    @staticmethod
    def sim_failure_threshold(desired: int) -> int:
        return max(3, min(200, math.ceil(0.5 * desired)))

    def _alarm_triggered(self, service: SimService, record: SimServiceDeployment, at: float) -> bool:
        alarms = record.alarm_config()
        if not alarms.get("enable") or not alarms.get("alarmNames") or record.stage == CLEAN_UP:
            return False
        if at - record.alarms_checked_at < self.alarm_poll_seconds:
            return False
        record.alarms_checked_at = at
        firing = [n for n in alarms["alarmNames"] if alarm_state(service.arn, n) == "ALARM"]
        if not firing:
            return False
        record.triggered = firing
        record.updated_at = at
        if not alarms.get("rollback"):
            return False
        self._roll_back(
            record,
            f"Service deployment rolled back because the CloudWatch alarm(s) {', '.join(firing)} "
            "went into ALARM.",
            at,
        )
        return True

    # -- endings -------------------------------------------------------------------------------------

    def _roll_back(self, record: SimServiceDeployment, reason: str, at: float) -> None:
        record.status = ROLLBACK_REQUESTED
        record.status_reason = reason
        source = record.sources[0] if record.sources else None
        record.rollback = {"reason": reason, "startedAt": at}
        if source is not None and source.revision_arn:
            record.rollback["serviceRevisionArn"] = source.revision_arn
        record.updated_at = at

    def _finish_rollback(self, service: SimService, record: SimServiceDeployment, at: float) -> None:
        green = record.target
        blue = next((s for s in record.sources if s.running > 0), None)
        if blue is None:
            self._finish(
                record,
                ROLLBACK_FAILED,
                "Service deployment rollback failed: no previous revision is running.",
                at,
            )
            return
        stopped = green.running
        green.running, green.status, green.rollout_state = 0, "INACTIVE", "FAILED"
        green.reason, green.updated_at = record.status_reason, at
        service.history.append({**green.render(0), "finishedAt": at})
        blue.status, blue.rollout_state, blue.updated_at = "PRIMARY", "COMPLETED", at
        blue.reason = f"ECS deployment {blue.id} completed."
        service.deployments = [blue] + [d for d in service.deployments if d is not blue and d is not green]
        service.last_completed = blue
        if stopped:
            self.sim._event(
                service, at, f"has stopped {stopped} running tasks: {self.sim._task_ids(stopped)}."
            )
        self.sim._event(
            service, at, f"(service-deployment {_short(record.arn)}) rolled back to deployment {blue.id}."
        )
        self._finish(record, ROLLBACK_SUCCESSFUL, record.status_reason, at)

    def _finish(self, record: SimServiceDeployment, status: str, reason: str, at: float) -> None:
        record.status, record.status_reason = status, reason
        record.finished_at = record.updated_at = at
        record.hook_log.extend(record.hooks)
        record.hooks = []

    def _stop(self, record: SimServiceDeployment, reason: str, at: float) -> None:
        record.status, record.status_reason = STOPPED, reason
        record.stopped_at = record.finished_at = record.updated_at = at
        if record.native and record.target.rollout_state == "IN_PROGRESS":
            record.target.rollout_state, record.target.reason = "FAILED", reason
        record.hook_log.extend(record.hooks)
        record.hooks = []

    # -- rendering ----------------------------------------------------------------------------------

    def render(self, record: SimServiceDeployment) -> Json:
        desired = (
            self.sim.services[record.service_arn].desired if record.service_arn in self.sim.services else 0
        )
        requested = desired if record.in_flight or record.status == SUCCESSFUL else 0
        target: Json = {
            "arn": record.target.revision_arn,
            "requestedTaskCount": requested,
            "runningTaskCount": record.target.running,
            "pendingTaskCount": max(0, requested - record.target.running) if record.in_flight else 0,
        }
        if record.native or record.weight:
            target["requestedProductionTrafficWeight"] = record.weight
            target["requestedTestTrafficWeight"] = record.test_weight
        sources = []
        for source in record.sources:
            if not source.revision_arn:
                continue
            summary: Json = {
                "arn": source.revision_arn,
                "requestedTaskCount": source.running,
                "runningTaskCount": source.running,
                "pendingTaskCount": 0,
            }
            if record.native:
                summary["requestedProductionTrafficWeight"] = 100.0 - record.weight
                summary["requestedTestTrafficWeight"] = 100.0 - record.test_weight
            sources.append(summary)
        out: Json = {
            "serviceDeploymentArn": record.arn,
            "serviceArn": record.service_arn,
            "clusterArn": record.cluster_arn,
            "createdAt": record.created_at,
            "updatedAt": record.updated_at,
            "sourceServiceRevisions": sources,
            "targetServiceRevision": target,
            "status": record.status,
            "deploymentConfiguration": conform(record.config, "DeploymentConfiguration"),
        }
        if record.started_at is not None:
            out["startedAt"] = record.started_at
        if record.finished_at is not None:
            out["finishedAt"] = record.finished_at
        if record.stopped_at is not None:
            out["stoppedAt"] = record.stopped_at
        if record.status_reason:
            out["statusReason"] = record.status_reason
        if record.native and record.stage:
            # PRE_PRODUCTION_TRAFFIC_SHIFT is a hook stage, not a ServiceDeploymentLifecycleStage: while its
            # hooks run before a traffic step the deployment reports PRODUCTION_TRAFFIC_SHIFT.
            stage = record.stage
            pre = stage == PRE_PRODUCTION_TRAFFIC_SHIFT
            out["lifecycleStage"] = PRODUCTION_TRAFFIC_SHIFT if pre else stage
            out["lifecycleHookDetails"] = [h.render() for h in record.hooks]
        if record.rollback:
            out["rollback"] = copy.deepcopy(record.rollback)
        out["deploymentCircuitBreaker"] = self._breaker(record)
        out["alarms"] = self._alarms(record)
        return out

    def _breaker(self, record: SimServiceDeployment) -> Json:
        breaker = record.config.get("deploymentCircuitBreaker") or {}
        if record.native or not breaker.get("enable"):
            return {"status": "DISABLED", "failureCount": record.target.failed, "threshold": 0}
        desired = (
            self.sim.services[record.service_arn].desired if record.service_arn in self.sim.services else 0
        )
        status = "MONITORING" if record.status == IN_PROGRESS else "MONITORING_COMPLETE"
        if record.status.startswith("ROLLBACK") or (
            record.status == STOPPED and record.target.rollout_state == "FAILED"
        ):
            status = "TRIGGERED"
        return {
            "status": status,
            "failureCount": record.target.failed,
            "threshold": self.sim_failure_threshold(desired),
        }

    @staticmethod
    def _alarms(record: SimServiceDeployment) -> Json:
        alarms = record.alarm_config()
        names = list(alarms.get("alarmNames") or [])
        if not alarms.get("enable") or not names:
            return {"status": "DISABLED", "alarmNames": names, "triggeredAlarmNames": []}
        status = "MONITORING" if record.in_flight else "MONITORING_COMPLETE"
        if record.triggered:
            status = "TRIGGERED"
        return {"status": status, "alarmNames": names, "triggeredAlarmNames": list(record.triggered)}

    def brief(self, record: SimServiceDeployment) -> Json:
        full = self.render(record)
        out = {
            k: full[k]
            for k in ("serviceDeploymentArn", "serviceArn", "clusterArn", "createdAt", "status")
            if k in full
        }
        for key in ("startedAt", "finishedAt", "statusReason"):
            if key in full:
                out[key] = full[key]
        out["targetServiceRevisionArn"] = record.target.revision_arn
        return out

    # -- the four operations -----------------------------------------------------------------------

    def _service_arn_of(self, call: Call) -> str:
        params = call.params
        if not params.get("service"):
            raise EcsError("InvalidParameterException", "service is required.")
        out = call.moto(
            "DescribeServices",
            {"cluster": params.get("cluster") or "default", "services": [params["service"]]},
        )
        found = out.get("services") or []
        if not found:
            failures = out.get("failures") or []
            if failures and "cluster" in str(failures[0].get("reason", "")).lower():
                raise EcsError("ClusterNotFoundException", "Cluster not found.")
            raise EcsError("ServiceNotFoundException", "Service not found.")
        return str(found[0]["serviceArn"])

    def list_service_deployments(self, call: Call) -> Reply:
        """ListServiceDeployments: newest first, filtered by status and createdAt, paginated."""
        params = call.params
        service_arn = self._service_arn_of(call)
        statuses = params.get("status")
        window = params.get("createdAt") or {}
        records = [
            r
            for r in reversed(self.by_service.get(service_arn, []))
            if (not statuses or r.status in statuses)
            and (window.get("after") is None or r.created_at >= float(window["after"]))
            and (window.get("before") is None or r.created_at <= float(window["before"]))
        ]
        size = params.get("maxResults")
        size = 20 if size is None else int(size)
        if not 1 <= size <= 100:
            raise EcsError("InvalidParameterException", "maxResults must be between 1 and 100.")
        start = int(params.get("nextToken") or 0)
        body: Json = {"serviceDeployments": [self.brief(r) for r in records[start : start + size]]}
        if start + size < len(records):
            body["nextToken"] = str(start + size)
        return Reply(200, body)

    def describe_service_deployments(self, call: Call) -> Reply:
        arns = call.params.get("serviceDeploymentArns")
        if not isinstance(arns, list) or not arns:
            raise EcsError("InvalidParameterException", "serviceDeploymentArns is required.")
        if len(arns) > MAX_DESCRIBE:
            raise EcsError(
                "InvalidParameterException", f"At most {MAX_DESCRIBE} serviceDeploymentArns are allowed."
            )
        found, failures = [], []
        for arn in arns:
            record = self.by_arn.get(arn)
            if record is None:
                failures.append({"arn": arn, "reason": "MISSING"})
            else:
                found.append(self.render(record))
        return Reply(200, {"serviceDeployments": found, "failures": failures})

    def _record(self, call: Call) -> SimServiceDeployment:
        arn = call.params.get("serviceDeploymentArn")
        record = self.by_arn.get(arn or "")
        if record is None:
            raise EcsError(
                "ServiceDeploymentNotFoundException", f"The service deployment {arn} does not exist."
            )
        return record

    def stop_service_deployment(self, call: Call) -> Reply:
        """StopServiceDeployment: ROLLBACK (default) or ABORT an in-flight deployment."""
        record = self._record(call)
        stop_type = call.params.get("stopType") or ROLLBACK
        at = self.sim.clock.timestamp()
        conflict = None
        if record.status not in (PENDING, IN_PROGRESS):
            conflict = (
                f"The service deployment is {record.status}; only a deployment in progress can be stopped."
            )
        elif record.native and record.stage == CLEAN_UP and stop_type == ROLLBACK:
            conflict = (
                "The service deployment is cleaning up the previous revision; it can no longer roll back."
            )
        if conflict:
            raise EcsError("ConflictException", conflict)
        service = self.sim.services.get(record.service_arn)
        if stop_type == "ABORT":
            record.status, record.status_reason = (
                STOP_REQUESTED,
                "Service deployment stopped by a StopServiceDeployment request.",
            )
            record.updated_at = at
        elif record.native:
            self._roll_back(
                record, "Service deployment rolled back because of a StopServiceDeployment request.", at
            )
        else:
            self._stop_rolling(service, record, at)
        if service is not None:
            self.sim._wake(service, at)
        return Reply(200, {"serviceDeploymentArn": record.arn})

    def _stop_rolling(self, service: SimService | None, record: SimServiceDeployment, at: float) -> None:
        """StopServiceDeployment(ROLLBACK) of a rolling deployment: redeploy the last completed one."""
        if service is None or service.last_completed is None or service.last_completed is record.target:
            raise EcsError("ConflictException", "There is no completed deployment to roll back to.")
        reason = "Service deployment rolled back because of a StopServiceDeployment request."
        record.target.rollout_state, record.target.reason, record.target.updated_at = FAILED, reason, at
        rollback = self.sim._rollback_rolling(service, record.target, at)
        record.rollback_to = rollback
        self._roll_back(record, reason, at)
        record.status = ROLLBACK_IN_PROGRESS

    def continue_service_deployment(self, call: Call) -> Reply:
        """ContinueServiceDeployment: act on the PAUSE hook ``hookId`` that awaits action."""
        record = self._record(call)
        hook_id = call.params.get("hookId")
        action = call.params.get("action") or CONTINUE
        hook = next((h for h in record.hooks if h.hook_id == hook_id), None)
        if hook is None or not record.in_flight:
            raise EcsError(
                "InvalidParameterException",
                f"The lifecycle hook {hook_id} is not active in this service deployment.",
            )
        if hook.target_type != PAUSE or hook.status != AWAITING_ACTION:
            raise EcsError(
                "InvalidParameterException",
                f"The lifecycle hook {hook_id} is {hook.status}, not a PAUSE hook awaiting action.",
            )
        at = self.sim.clock.timestamp()
        hook.finished_at = at
        if action == ROLLBACK:
            hook.status = FAILED
            self._roll_back(
                record,
                f"Service deployment rolled back by ContinueServiceDeployment at lifecycle hook {hook_id}.",
                at,
            )
        else:
            hook.status = SUCCEEDED
            record.updated_at = at
        service = self.sim.services.get(record.service_arn)
        if service is not None:
            self.sim._wake(service, at)
        return Reply(200, {"serviceDeploymentArn": record.arn})

    # -- CreateService / UpdateService checks ----------------------------------------------------

    def _checked(self, handler: Callable[[Call], Reply]) -> Callable[[Call], Reply]:
        """CreateService/UpdateService, refused first when ECS would refuse the deployment configuration
        or the change of deployment controller."""

        def checked(call: Call) -> Reply:
            params = call.params
            if not {"deploymentConfiguration", "loadBalancers", "deploymentController"} & set(params):
                return handler(call)
            stored: Json = {}
            if call.operation == "UpdateService" and params.get("service"):
                out = call.moto(
                    "DescribeServices",
                    {"cluster": params.get("cluster") or "default", "services": [params["service"]]},
                )
                stored = merge_service(call, out["services"][0]) if out.get("services") else {}
                if "deploymentController" in params:
                    self._check_controller_switch(stored, params["deploymentController"])
            check_deployment_request(params, stored)
            return handler(call)

        return checked

    def _check_controller_switch(self, stored: Json, wanted: Json) -> None:
        """EXTERNAL or CODE_DEPLOY -> ECS needs exactly one task set, PRIMARY (as ECS documents); ECS ->
        EXTERNAL in place is not modelled (the agent never asks for it)."""
        have = (stored.get("deploymentController") or {}).get("type", "ECS")
        want = (wanted or {}).get("type", "ECS")
        if have == want:
            return
        if want != "ECS" or have not in ("EXTERNAL", "CODE_DEPLOY"):
            raise EcsError(
                "InvalidParameterException",
                f"The sandbox models a deployment controller change from EXTERNAL or CODE_DEPLOY to ECS "
                f"only, not {have} to {want}; create a new service instead.",
            )
        sim = self.sim.services.get(stored.get("serviceArn", ""))
        task_sets = [ts for ts in (sim.task_sets if sim else []) if ts.status != "DRAINING"]
        if len(task_sets) > 1:
            raise EcsError(
                "InvalidParameterException",
                "Updating the deployment controller is not supported when there are multiple tasksets in the "
                "service. Please ensure your service has only one taskset and try again.",
            )
        if not task_sets or task_sets[0].status != "PRIMARY":
            raise EcsError(
                "InvalidParameterException",
                "Updating the deployment controller requires a primary taskset in the service. Please ensure "
                "your service has a primary taskset and try again.",
            )

    # -- ids ------------------------------------------------------------------------------------

    def _arn(self, service: SimService, kind: str) -> str:
        prefix, _, path = service.arn.partition(":service/")
        token = "".join(
            self.sim._rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
            for _ in range(20)
        )
        return f"{prefix}:{kind}/{path}/{token}"

    def _revision_arn(self, service: SimService) -> str:
        prefix, _, path = service.arn.partition(":service/")
        return f"{prefix}:service-revision/{path}/{self.sim._rng.randrange(10**18, 10**19)}"


def deployment_revision(deployment: SimDeployment, service: SimService) -> str:
    """The service revision a rolling rollback returns to: the one the completed deployment ran."""
    last = service.last_completed
    return last.revision_arn if last is not None and last.revision_arn else deployment.revision_arn


def alarm_state(service_arn: str, name: str) -> str | None:
    """The StateValue moto's CloudWatch holds for alarm ``name`` in the service's account and region."""
    from moto.cloudwatch.models import cloudwatch_backends

    parts = service_arn.split(":")
    region, account = parts[3], parts[4]
    alarm = cloudwatch_backends[account][region].alarms.get(name)
    return getattr(alarm, "state_value", None) if alarm is not None else None


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _percent(value: float) -> str:
    return f"{value:g}"
