"""The ECS behaviour moto lacks: deployments and task sets that move forward with a clock.

moto stores services but never runs them: every deployment stays IN_PROGRESS, UpdateService makes no
new deployment, no task starts, and CreateTaskSet crashes (HTTP 500) on Fargate task definitions. The
:class:`Simulator` owns that behaviour. It plugs into :class:`~agent.sandbox.overlay.EcsOverlay`
(:meth:`Simulator.install`): post-processors replace moto's ``deployments`` / ``taskSets`` / counts /
``events`` in CreateService, UpdateService, DescribeServices and DeleteService replies, and handlers
serve the five task-set operations without moto.

State is a deterministic function of the :class:`SandboxClock`: before every ECS request (and every
control request) the simulator *catches up* to ``clock.now()`` by replaying the ticks that fell due, so
there is no background thread, and a test that advances a manual clock sees exactly the same result
every time. Ids come from a seeded generator, so they repeat too.

Timing model (``T`` = ``task_start_seconds``, default 2 s). Each service with work to do ticks every
``T`` seconds from the moment the work appeared (a create, an update, a task-set change); an idle
service does not tick. On each tick:

* **ECS controller (rolling).** The PRIMARY deployment starts one task (``runningCount`` + 1) until it
  runs ``desiredCount``. If ``maximumPercent`` leaves no room for that task, old (ACTIVE) tasks are
  stopped first, down to the ``minimumHealthyPercent`` floor (at least one). Then old tasks above
  ``desiredCount`` in total are stopped, oldest deployment first. When the PRIMARY runs
  ``desiredCount`` and no old task is left, it is COMPLETED and the drained deployments disappear, in
  the same tick. So a create, or an image update with the default 200/100 percents, of ``N`` tasks is
  COMPLETED ``max(N, 1) * T`` seconds after the call (N=3, T=2: 6 s), and the old deployment is gone at
  the same moment. A desiredCount-only update keeps the PRIMARY deployment (and its rolloutState);
  running climbs one task per tick, or drops at once on the next tick.
* **Broken images.** A deployment whose task definition has an image matching ``failure_pattern``
  (fnmatch, default ``*:broken*``) starts no task: ``failedTasks`` + 1 per tick instead. With the
  circuit breaker enabled the deployment turns FAILED on the tick where ``failedTasks`` reaches
  ``max(3, min(200, ceil(desiredCount / 2)))`` -- i.e. ``threshold * T`` seconds after the update
  (``3 * 2 = 6`` s for up to 6 tasks) -- and starts no more tasks. With ``rollback`` enabled, the same
  tick starts a new PRIMARY deployment of the last COMPLETED deployment's task definition (the failed
  one becomes ACTIVE, keeps rolloutState FAILED, and is removed when the rollback completes, ``N * T``
  seconds later, since the rollback replaces the old tasks like any update). Without the circuit
  breaker the deployment stays IN_PROGRESS and ``failedTasks`` climbs for ever.
* **EXTERNAL controller (task sets).** ``computedDesiredCount = ceil(desiredCount * scale / 100)``. Each
  task set starts one task per tick until it runs that many (or drops to it at once), and reports
  STEADY_STATE from that tick on: ``computedDesiredCount * T`` seconds after its creation or scaling.
  A task set with a broken image never runs a task and stays STABILIZING (``pendingCount`` =
  ``computedDesiredCount``). DeleteTaskSet makes it DRAINING; it is gone on the next tick (``T`` s).

  A task set's ``loadBalancers`` are what registers it to a target group. UpdateService's
  ``desiredCount`` changes every task set's ``computedDesiredCount`` at once (STABILIZING until the
  tasks follow).
* **CODE_DEPLOY controller.** CreateService makes one PRIMARY task set from the service (CodeDeploy's
  first one), which starts its tasks like an EXTERNAL task set. UpdateService of the task definition,
  load balancers, network configuration or platform version is refused, as ECS does (that is a
  CodeDeploy deployment), unless the same call moves the service to the ECS controller: then its task
  sets become ACTIVE deployments (the primary one the last COMPLETED) and a new deployment replaces them.
* **Service deployments.** Every ECS-controller deployment is also a service deployment
  (ListServiceDeployments and friends), and a service whose ``deploymentConfiguration.strategy`` is
  BLUE_GREEN, LINEAR or CANARY goes through ECS's lifecycle stages, hooks, traffic steps, bake and
  rollback instead of the rolling steps above: :mod:`agent.sandbox.service_deployments`
  (:attr:`Simulator.service_deployments`).

Not modelled: health-check grace periods, placement, capacity (any number of tasks fits), and the
listener rules' weights during a native deployment (it reports its requested traffic weights; the
rules in moto keep theirs). CloudWatch alarms are moto's own and change only when set
(``Sandbox.set_alarm``); Lambda Invoke is :mod:`agent.sandbox.lambdas`.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.sandbox.overlay import (
    DEPLOYMENT_FIELDS,
    FARGATE_PROVIDERS,
    Call,
    EcsError,
    Reply,
    check_capacity_strategy,
    merge_service,
    normalise_strategy,
)
from agent.sandbox.service_deployments import ServiceDeployments

if TYPE_CHECKING:
    from agent.sandbox.overlay import EcsOverlay

Json = dict[str, Any]
ControlHandler = Callable[[re.Match[str], Json], Json]

DEFAULT_TASK_START_SECONDS = 2.0
DEFAULT_FAILURE_PATTERN = "*:broken*"
MAX_EVENTS = 100  # DescribeServices returns at most the 100 newest events
CIRCUIT_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."
PRIMARY, ACTIVE, INACTIVE, DRAINING = "PRIMARY", "ACTIVE", "INACTIVE", "DRAINING"
IN_PROGRESS, COMPLETED, FAILED = "IN_PROGRESS", "COMPLETED", "FAILED"
STEADY_STATE, STABILIZING = "STEADY_STATE", "STABILIZING"
CODE_DEPLOY = "CODE_DEPLOY"
_TASK_SET_ONLY = ("loadBalancers", "serviceRegistries")  # task-set fields a Deployment does not have
SEED = 20141113  # ids repeat from one sandbox to the next


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


# --------------------------------------------------------------------------------------------------
# State


@dataclass
class SimDeployment:
    """One ECS deployment of a service (the botocore ``Deployment`` shape, see :meth:`render`)."""

    id: str
    task_definition: str
    images: tuple[str, ...]
    created_at: float
    fields: Json  # launchType or capacityProviderStrategy, platform*, networkConfiguration, ...
    status: str = PRIMARY
    running: int = 0
    failed: int = 0
    rollout_state: str = IN_PROGRESS
    reason: str = ""
    updated_at: float = 0.0
    revision_arn: str = ""  # the service revision it runs (ServiceDeployment APIs)

    def render(self, desired: int) -> Json:
        pending = 0
        if self.status == PRIMARY and self.rollout_state != FAILED:
            pending = max(0, desired - self.running)
        return {
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "desiredCount": desired if self.status == PRIMARY else self.running,
            "pendingCount": pending,
            "runningCount": self.running,
            "failedTasks": self.failed,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at or self.created_at,
            **copy.deepcopy(self.fields),
            "rolloutState": self.rollout_state,
            "rolloutStateReason": self.reason or f"ECS deployment {self.id} in progress.",
        }


@dataclass
class SimTaskSet:
    """One task set of an EXTERNAL-controller service (the botocore ``TaskSet`` shape)."""

    id: str
    arn: str
    external_id: str | None
    task_definition: str
    images: tuple[str, ...]
    created_at: float
    fields: Json  # launchType or capacityProviderStrategy, platform*, network, loadBalancers, ...
    scale: float = 100.0
    status: str = ACTIVE
    running: int = 0
    stability: str = STABILIZING
    stability_at: float = 0.0
    updated_at: float = 0.0
    tags: list[Json] = field(default_factory=list)


@dataclass
class SimService:
    """What the simulator knows of one service, keyed by its ARN."""

    arn: str
    name: str
    cluster_arn: str
    controller: str
    desired: int
    config: Json  # deploymentConfiguration with ECS defaults filled
    deployment_configuration: Json = field(default_factory=dict)  # as the service reports it
    load_balancers: list[Json] = field(default_factory=list)
    deployments: list[SimDeployment] = field(default_factory=list)  # PRIMARY first
    task_sets: list[SimTaskSet] = field(default_factory=list)  # in creation order
    events: list[Json] = field(default_factory=list)  # oldest first; rendered newest first
    history: list[Json] = field(default_factory=list)  # finished deployments (ServiceDeployment APIs)
    next_tick: float | None = None
    last_completed: SimDeployment | None = None

    @property
    def primary(self) -> SimDeployment | None:
        return self.deployments[0] if self.deployments else None


def failure_threshold(desired: int) -> int:
    """ECS's circuit-breaker threshold: half the desired count, at least 3 and at most 200."""
    return max(3, min(200, math.ceil(0.5 * desired)))


def _deployment_config(service: Json) -> Json:
    config = service.get("deploymentConfiguration") or {}
    breaker = config.get("deploymentCircuitBreaker") or {}
    return {
        "maximumPercent": int(config.get("maximumPercent", 200)),
        "minimumHealthyPercent": int(config.get("minimumHealthyPercent", 100)),
        "circuitBreaker": bool(breaker.get("enable")),
        "rollback": bool(breaker.get("rollback")),
    }


def _uses_fargate(record: Json) -> bool:
    strategy = record.get("capacityProviderStrategy")
    if strategy:
        return any(item.get("capacityProvider") in FARGATE_PROVIDERS for item in strategy)
    return record.get("launchType") == "FARGATE"


def _sim_service(service: Json) -> SimService:
    """The simulator's record of a service, as CreateService (or moto, for one adopted) reports it."""
    return SimService(
        arn=service["serviceArn"],
        name=service["serviceName"],
        cluster_arn=service.get("clusterArn", ""),
        controller=(service.get("deploymentController") or {}).get("type", "ECS"),
        desired=int(service.get("desiredCount") or 0),
        config=_deployment_config(service),
        deployment_configuration=copy.deepcopy(service.get("deploymentConfiguration") or {}),
        load_balancers=copy.deepcopy(service.get("loadBalancers") or []),
    )


def _compute_fields(source: Json) -> Json:
    """launchType or capacityProviderStrategy, and platformVersion/Family on Fargate, like ECS reports."""
    out: Json = {}
    if source.get("capacityProviderStrategy"):
        out["capacityProviderStrategy"] = normalise_strategy(source["capacityProviderStrategy"])
    else:
        out["launchType"] = source.get("launchType") or "EC2"
    if _uses_fargate(out):
        out["platformVersion"] = source.get("platformVersion") or "LATEST"
        out["platformFamily"] = "Linux"
    if (source.get("networkConfiguration") or {}).get("awsvpcConfiguration"):
        out["networkConfiguration"] = copy.deepcopy(source["networkConfiguration"])
    return out


def _images(task_definition: Json) -> tuple[str, ...]:
    return tuple(str(c.get("image", "")) for c in task_definition.get("containerDefinitions") or [])


# --------------------------------------------------------------------------------------------------
# The simulator


class Simulator:
    """Moves the sandbox's services forward with :attr:`clock` (see the module docstring)."""

    def __init__(
        self,
        clock: SandboxClock | None = None,
        *,
        task_start_seconds: float = DEFAULT_TASK_START_SECONDS,
        failure_pattern: str = DEFAULT_FAILURE_PATTERN,
    ) -> None:
        if task_start_seconds <= 0:
            raise ValueError("task_start_seconds must be positive")
        self.clock = clock or SandboxClock()
        self.task_start_seconds = float(task_start_seconds)
        self.failure_pattern = failure_pattern
        self.lock = threading.RLock()
        self.service_deployments = ServiceDeployments(self)
        # Control API: (method, path regex, handler); later issues append (alarms, hook results...).
        self.routes: list[tuple[str, re.Pattern[str], ControlHandler]] = [
            ("POST", re.compile(r"^/_sandbox/clock/advance$"), self._control_advance),
            ("GET", re.compile(r"^/_sandbox/clock$"), lambda _m, _b: {"now": self.clock.now().isoformat()}),
            ("GET", re.compile(r"^/_sandbox/state$"), lambda _m, _b: self.state()),
            ("POST", re.compile(r"^/_sandbox/config$"), self._control_config),
            *self.service_deployments.routes(),
        ]
        self.reset()

    def reset(self) -> None:
        """Forget every simulated service and task set; the clock and the settings stay as they are."""
        with self.lock:
            self.services: dict[str, SimService] = {}
            self._rng = random.Random(SEED)
            self.service_deployments.reset()

    # -- wiring --------------------------------------------------------------------------------

    def install(self, overlay: EcsOverlay) -> None:
        """Register the simulator's handlers, post-processors, catch-up hook and control routes."""
        self.lock = overlay.lock  # one lock for moto, the overlay and the simulator
        overlay.now = self.clock.timestamp
        overlay.before_dispatch.append(self.catch_up)
        overlay.control_routes.extend(self.routes)
        for operation, handler in {
            "CreateTaskSet": self.create_task_set,
            "DescribeTaskSets": self.describe_task_sets,
            "UpdateTaskSet": self.update_task_set,
            "UpdateServicePrimaryTaskSet": self.update_service_primary_task_set,
            "DeleteTaskSet": self.delete_task_set,
        }.items():
            overlay.handlers[operation] = handler
        self.service_deployments.install(overlay)
        for operation, post in {
            "CreateService": self._create_service_post,
            "UpdateService": self._update_service_post,
            "DescribeServices": self._describe_services_post,
            "DeleteService": self._delete_service_post,
        }.items():
            overlay.post_processors.setdefault(operation, []).append(post)

    # -- ids -----------------------------------------------------------------------------------

    def _deployment_id(self) -> str:
        return f"ecs-svc/{self._rng.randrange(10**18, 10**19)}"

    def _uuid(self) -> str:
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def _task_ids(self, count: int) -> str:
        return ", ".join(f"(task {self._rng.getrandbits(128):032x})" for _ in range(count))

    # -- time ----------------------------------------------------------------------------------

    def catch_up(self) -> None:
        """Replay every tick that fell due up to the clock's now."""
        with self.lock:
            now = self.clock.timestamp()
            for service in list(self.services.values()):
                while service.next_tick is not None and service.next_tick <= now:
                    at = service.next_tick
                    self._tick(service, at)
                    service.next_tick = at + self.task_start_seconds if self._has_work(service) else None

    def _wake(self, service: SimService, now: float) -> None:
        if service.next_tick is None and self._has_work(service):
            service.next_tick = now + self.task_start_seconds

    def _broken(self, images: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatchcase(image, self.failure_pattern) for image in images)

    def _has_work(self, service: SimService) -> bool:
        if service.controller == "ECS":
            if self.service_deployments.has_work(service):
                return True
            primary = service.primary
            if primary is None or primary.rollout_state == FAILED:
                return False
            return (
                primary.rollout_state == IN_PROGRESS
                or primary.running != service.desired
                or len(service.deployments) > 1
            )
        for task_set in service.task_sets:
            if task_set.status == DRAINING:
                return True
            target = self._computed(service, task_set)
            if task_set.running > target or (task_set.running < target and not self._broken(task_set.images)):
                return True
        return False

    # -- events --------------------------------------------------------------------------------

    def _event(self, service: SimService, at: float, message: str) -> None:
        text = f"(service {service.name}) {message}"
        service.events.append({"id": self._uuid(), "createdAt": at, "message": text})
        del service.events[:-MAX_EVENTS]

    # -- deployments (ECS controller) ------------------------------------------------------------

    def _tick(self, service: SimService, at: float) -> None:
        if service.controller == "ECS":
            self._tick_deployments(service, at)
        else:
            self._tick_task_sets(service, at)

    def _stop_old(self, service: SimService, count: int, at: float) -> None:
        """Stop ``count`` tasks of the ACTIVE deployments, oldest deployment first."""
        stopped = 0
        for deployment in reversed(service.deployments[1:]):
            take = min(count - stopped, deployment.running)
            if take > 0:
                deployment.running -= take
                deployment.updated_at = at
                stopped += take
        if stopped:
            self._event(service, at, f"has stopped {stopped} running tasks: {self._task_ids(stopped)}.")

    def _tick_deployments(self, service: SimService, at: float) -> None:
        native = self.service_deployments.current(service)
        if native is not None:  # BLUE_GREEN / LINEAR / CANARY: the service deployment drives it
            self.service_deployments.tick(service, native, at)
            return
        primary = service.primary
        if primary is None or primary.rollout_state == FAILED:
            return
        desired = service.desired
        config = service.config
        old_running = sum(d.running for d in service.deployments[1:])
        if primary.running < desired:
            room = max(desired, desired * config["maximumPercent"] // 100)
            if old_running and old_running + primary.running >= room:
                floor = max(0, math.ceil(desired * config["minimumHealthyPercent"] / 100) - primary.running)
                self._stop_old(service, old_running - min(old_running - 1, floor), at)
            if self._broken(primary.images):
                primary.failed += 1
                primary.updated_at = at
                self._event(
                    service, at, f"(deployment {primary.id}) task {self._task_ids(1)[6:-1]} failed to start."
                )
                if config["circuitBreaker"] and primary.failed >= failure_threshold(desired):
                    self._fail(service, primary, at)
                return
            primary.running += 1
            primary.updated_at = at
            self._event(service, at, f"has started 1 tasks: {self._task_ids(1)}.")
        elif primary.running > desired:
            stopped = primary.running - desired
            primary.running = desired
            primary.updated_at = at
            self._event(service, at, f"has stopped {stopped} running tasks: {self._task_ids(stopped)}.")
        old_running = sum(d.running for d in service.deployments[1:])
        if old_running + primary.running > desired:
            self._stop_old(service, min(old_running, old_running + primary.running - desired), at)
            old_running = sum(d.running for d in service.deployments[1:])
        if primary.running == desired and old_running == 0:
            if primary.rollout_state == IN_PROGRESS:
                primary.rollout_state = COMPLETED
                primary.reason = f"ECS deployment {primary.id} completed."
                primary.updated_at = at
                service.last_completed = primary
                self._event(service, at, f"(deployment {primary.id}) deployment completed.")
                self.service_deployments.completed(service, primary, at)
            for gone in service.deployments[1:]:
                self._finish(service, gone, at)
            service.deployments = [primary]
            self._event(service, at, "has reached a steady state.")

    def _finish(self, service: SimService, deployment: SimDeployment, at: float) -> None:
        deployment.status = INACTIVE
        deployment.updated_at = at
        service.history.append({**deployment.render(0), "finishedAt": at})

    def _fail(self, service: SimService, failed: SimDeployment, at: float) -> None:
        failed.rollout_state = FAILED
        failed.reason = CIRCUIT_BREAKER_REASON
        failed.updated_at = at
        self._event(service, at, f"(deployment {failed.id}) deployment failed: tasks failed to start.")
        rollback = self._rollback_rolling(service, failed, at) if service.config["rollback"] else None
        self.service_deployments.failed(service, failed, rollback, at)

    def _rollback_rolling(
        self, service: SimService, failed: SimDeployment, at: float
    ) -> SimDeployment | None:
        """Start a PRIMARY deployment of the last completed deployment's task definition (None: none)."""
        target = service.last_completed
        if target is None or target is failed:
            return None
        failed.status = ACTIVE
        rollback = SimDeployment(
            id=self._deployment_id(),
            task_definition=target.task_definition,
            images=target.images,
            created_at=at,
            updated_at=at,
            fields=copy.deepcopy(target.fields),
            revision_arn=target.revision_arn,
        )
        service.deployments.insert(0, rollback)
        self._event(service, at, f"rolling back to deployment {target.id}.")
        return rollback

    def _start_deployment(
        self,
        service: SimService,
        task_definition: str,
        images: tuple[str, ...],
        fields: Json,
        at: float,
        record: bool = True,
    ) -> SimDeployment:
        sources = list(service.deployments)
        for deployment in service.deployments:
            deployment.status = ACTIVE
            deployment.updated_at = at
        deployment = SimDeployment(
            id=self._deployment_id(),
            task_definition=task_definition,
            images=images,
            created_at=at,
            updated_at=at,
            fields=fields,
        )
        service.deployments.insert(0, deployment)
        if record:
            self.service_deployments.started(service, deployment, sources, at)
        return deployment

    # -- task sets (EXTERNAL controller) ---------------------------------------------------------

    @staticmethod
    def _computed(service: SimService, task_set: SimTaskSet) -> int:
        if task_set.status == DRAINING:
            return 0
        return math.ceil(service.desired * task_set.scale / 100 - 1e-9)

    def _tick_task_sets(self, service: SimService, at: float) -> None:
        was_steady = all(ts.stability == STEADY_STATE for ts in service.task_sets)
        self._step_task_sets(service, at)
        steady = all(ts.stability == STEADY_STATE for ts in service.task_sets)
        if service.task_sets and steady and not was_steady:
            self._event(service, at, "has reached a steady state.")

    def _step_task_sets(self, service: SimService, at: float) -> None:
        for task_set in list(service.task_sets):
            if task_set.status == DRAINING:
                service.task_sets.remove(task_set)
                if task_set.running:
                    self._event(
                        service,
                        at,
                        f"has stopped {task_set.running} running tasks: {self._task_ids(task_set.running)}.",
                    )
                continue
            target = self._computed(service, task_set)
            before = task_set.running
            if task_set.running < target and not self._broken(task_set.images):
                task_set.running += 1
                started = self._task_ids(1)
                self._event(service, at, f"(task-set {task_set.id}) has started 1 tasks: {started}.")
            elif task_set.running > target:
                task_set.running = target
                self._event(
                    service, at, f"(task-set {task_set.id}) has stopped {before - target} running tasks."
                )
            if task_set.running != before:
                task_set.updated_at = at
            self._restabilise(task_set, target, at)

    def _restabilise(self, task_set: SimTaskSet, target: int, at: float) -> None:
        stability = STEADY_STATE if task_set.running == target else STABILIZING
        if stability != task_set.stability:
            task_set.stability, task_set.stability_at = stability, at

    def _render_task_set(self, service: SimService, task_set: SimTaskSet, tags: bool = False) -> Json:
        target = self._computed(service, task_set)
        out: Json = {
            "id": task_set.id,
            "taskSetArn": task_set.arn,
            "serviceArn": service.arn,
            "clusterArn": service.cluster_arn,
            "status": task_set.status,
            "taskDefinition": task_set.task_definition,
            "computedDesiredCount": target,
            "pendingCount": max(0, target - task_set.running),
            "runningCount": task_set.running,
            "createdAt": task_set.created_at,
            "updatedAt": task_set.updated_at or task_set.created_at,
            **copy.deepcopy(task_set.fields),
            "scale": {"value": task_set.scale, "unit": "PERCENT"},
            "stabilityStatus": task_set.stability,
            "stabilityStatusAt": task_set.stability_at or task_set.created_at,
        }
        if task_set.external_id is not None:
            out["externalId"] = task_set.external_id
        if tags:
            out["tags"] = copy.deepcopy(task_set.tags)
        return out

    # -- services as the overlay reports them -----------------------------------------------------

    def _adopt(self, service: Json, at: float) -> SimService:
        """A service the simulator has not seen (created before a reset): steady, as moto left it."""
        sim = _sim_service(service)
        controller = sim.controller
        if controller == "ECS" and service.get("taskDefinition"):
            fields = _compute_fields(service)
            deployment = self._start_deployment(sim, service["taskDefinition"], (), fields, at, record=False)
            deployment.running = sim.desired
            deployment.rollout_state = COMPLETED
            deployment.reason = f"ECS deployment {deployment.id} completed."
            sim.last_completed = deployment
        self.services[sim.arn] = sim
        return sim

    def _render_service(self, service: Json) -> Json:
        sim = self.services.get(service.get("serviceArn", ""))
        if service.get("status") == INACTIVE or (sim is None and service.get("status") != ACTIVE):
            service["deployments"] = []
            service["runningCount"] = service["pendingCount"] = 0
            service.pop("taskSets", None)
            return service
        if sim is None:
            sim = self._adopt(service, self.clock.timestamp())
        service["desiredCount"] = sim.desired
        service["events"] = [copy.deepcopy(e) for e in reversed(sim.events)]
        if sim.controller == "ECS":
            rendered = [d.render(sim.desired) for d in sim.deployments]
            service["deployments"] = rendered
            service.pop("taskSets", None)
            if sim.primary is not None:
                service["taskDefinition"] = sim.primary.task_definition
        else:
            rendered = [self._render_task_set(sim, ts) for ts in self._ordered(sim)]
            service["deployments"] = []
            service["taskSets"] = rendered
        service["runningCount"] = sum(r["runningCount"] for r in rendered)
        service["pendingCount"] = sum(r["pendingCount"] for r in rendered)
        return service

    @staticmethod
    def _ordered(sim: SimService) -> list[SimTaskSet]:
        rank = {PRIMARY: 0, ACTIVE: 1, DRAINING: 2}
        return sorted(sim.task_sets, key=lambda ts: (rank.get(ts.status, 3), -ts.created_at))

    def _describe_task_definition(self, call: Call, task_definition: str) -> Json:
        return call.moto("DescribeTaskDefinition", {"taskDefinition": task_definition})["taskDefinition"]

    def _create_service_post(self, call: Call, body: Json) -> Json:
        service = body["service"]
        at = self.clock.timestamp()
        sim = _sim_service(service)
        controller = sim.controller
        self.services[sim.arn] = sim
        if controller == "ECS" and service.get("taskDefinition"):
            described = self._describe_task_definition(call, service["taskDefinition"])
            fields = _compute_fields(service)
            fields.update({k: copy.deepcopy(call.params[k]) for k in DEPLOYMENT_FIELDS if k in call.params})
            self._start_deployment(sim, described["taskDefinitionArn"], _images(described), fields, at)
        elif controller == CODE_DEPLOY and service.get("taskDefinition"):
            self._code_deploy_task_set(call, sim, service, at)
        self._wake(sim, at)
        body["service"] = self._render_service(service)
        return body

    def _update_service_post(self, call: Call, body: Json) -> Json:
        service = body["service"]
        at = self.clock.timestamp()
        sim = self.services.get(service["serviceArn"]) or self._adopt(service, at)
        params = call.params
        migrated = (
            sim.controller == CODE_DEPLOY and (service.get("deploymentController") or {}).get("type") == "ECS"
        )
        if migrated:
            self._leave_code_deploy(sim, at)
        sim.desired = int(service.get("desiredCount") or 0)
        sim.config = _deployment_config(service)
        sim.deployment_configuration = copy.deepcopy(service.get("deploymentConfiguration") or {})
        sim.load_balancers = copy.deepcopy(service.get("loadBalancers") or [])
        if sim.controller == "EXTERNAL" and (service.get("deploymentController") or {}).get("type") == "ECS":
            self._to_ecs_controller(call, sim, at)
            service = merge_service(call, service)
        for task_set in sim.task_sets:  # a new desiredCount changes every computedDesiredCount at once
            self._restabilise(task_set, self._computed(sim, task_set), at)
        if sim.controller == "ECS":
            primary = sim.primary
            task_definition = service.get("taskDefinition") if "taskDefinition" in params else None
            if primary is not None and task_definition is None:
                task_definition = primary.task_definition
            fields = _compute_fields(service)
            previous = primary.fields if primary else {}
            fields.update({k: copy.deepcopy(previous[k]) for k in DEPLOYMENT_FIELDS if k in previous})
            fields.update({k: copy.deepcopy(params[k]) for k in DEPLOYMENT_FIELDS if k in params})
            if task_definition and (
                primary is None
                or params.get("forceNewDeployment")
                or migrated
                or task_definition != primary.task_definition
                or fields != primary.fields
            ):
                described = self._describe_task_definition(call, task_definition)
                self._start_deployment(sim, described["taskDefinitionArn"], _images(described), fields, at)
        self._wake(sim, at)
        body["service"] = self._render_service(service)
        return body

    def _to_ecs_controller(self, call: Call, sim: SimService, at: float) -> None:
        """EXTERNAL -> ECS (checked: one PRIMARY task set): that task set becomes a completed deployment,
        and the fields a service reports from its primary task set become the service's own."""
        task_set = next(ts for ts in sim.task_sets if ts.status == PRIMARY)
        record = call.state.services.setdefault(sim.arn, {})
        for key in ("launchType", "capacityProviderStrategy", "platformVersion", "networkConfiguration"):
            record.pop(key, None)
            if key in task_set.fields:
                record[key] = copy.deepcopy(task_set.fields[key])
        for key in ("loadBalancers", "serviceRegistries"):
            if key not in call.params and key in task_set.fields:
                record[key] = copy.deepcopy(task_set.fields[key])
        fields = {k: v for k, v in task_set.fields.items() if k not in ("loadBalancers", "serviceRegistries")}
        deployment = SimDeployment(
            id=self._deployment_id(),
            task_definition=task_set.task_definition,
            images=task_set.images,
            created_at=at,
            updated_at=at,
            fields=copy.deepcopy(fields),
            running=task_set.running,
            rollout_state=COMPLETED,
            revision_arn=self.service_deployments._revision_arn(sim),
        )
        deployment.reason = f"ECS deployment {deployment.id} completed."
        sim.controller, sim.task_sets, sim.deployments = "ECS", [], [deployment]
        sim.last_completed = deployment
        self._event(
            sim,
            at,
            f"deployment controller changed to ECS; task set {task_set.id} is deployment {deployment.id}.",
        )

    def _describe_services_post(self, call: Call, body: Json) -> Json:
        body["services"] = [self._render_service(s) for s in body.get("services") or []]
        return body

    def _delete_service_post(self, call: Call, body: Json) -> Json:
        service = body.get("service")
        if service:
            sim = self.services.pop(service.get("serviceArn", ""), None)
            if sim is not None:
                service["deployments"] = [d.render(0) for d in sim.deployments]
                service["runningCount"] = sum(d.running for d in sim.deployments) + sum(
                    ts.running for ts in sim.task_sets
                )
                service["pendingCount"] = 0
            service.pop("taskSets", None)
        return body

    # -- CODE_DEPLOY controller: CodeDeploy's task set, and the migration to the ECS controller ------

    def _code_deploy_task_set(self, call: Call, sim: SimService, service: Json, at: float) -> None:
        """CreateService with CODE_DEPLOY: ECS makes the first (PRIMARY) task set from the service."""
        described = self._describe_task_definition(call, service["taskDefinition"])
        fields = _compute_fields(service)
        for name in ("loadBalancers", "serviceRegistries"):
            fields[name] = copy.deepcopy(service.get(name) or [])
        task_set_id = self._deployment_id()
        cluster_name = sim.cluster_arn.rsplit("/", 1)[-1]
        task_set = SimTaskSet(
            id=task_set_id,
            arn=call.arn(f"task-set/{cluster_name}/{sim.name}/{task_set_id}"),
            external_id=None,
            task_definition=described["taskDefinitionArn"],
            images=_images(described),
            created_at=at,
            updated_at=at,
            fields=fields,
            status=PRIMARY,
            stability_at=at,
        )
        sim.task_sets.append(task_set)
        self._restabilise(task_set, self._computed(sim, task_set), at)

    def _leave_code_deploy(self, sim: SimService, at: float) -> None:
        """UpdateService CODE_DEPLOY -> ECS: the task sets' tasks become the ECS controller's deployments
        (the primary one COMPLETED, so a failed first deployment can roll back to it); the caller then
        starts a new deployment that replaces them."""
        deployments = []
        for task_set in self._ordered(sim):
            if task_set.status == DRAINING:
                continue
            fields = {k: copy.deepcopy(v) for k, v in task_set.fields.items() if k not in _TASK_SET_ONLY}
            deployments.append(
                SimDeployment(
                    id=task_set.id,
                    task_definition=task_set.task_definition,
                    images=task_set.images,
                    created_at=task_set.created_at,
                    fields=fields,
                    status=PRIMARY if not deployments else ACTIVE,
                    running=task_set.running,
                    rollout_state=COMPLETED,
                    reason=f"ECS deployment {task_set.id} completed.",
                    updated_at=at,
                )
            )
        sim.deployments, sim.task_sets, sim.controller = deployments, [], "ECS"
        sim.last_completed = deployments[0] if deployments else None
        self._event(sim, at, "updated its deployment controller from CODE_DEPLOY to ECS.")

    # -- task-set operations (served here, never by moto: its CreateTaskSet crashes on Fargate) -----

    def _service_of(self, call: Call) -> SimService:
        params = call.params
        for name in ("cluster", "service"):
            if not params.get(name):
                raise EcsError("InvalidParameterException", f"{name} is required.")
        out = call.moto("DescribeServices", {"cluster": params["cluster"], "services": [params["service"]]})
        found = [s for s in out.get("services") or [] if s.get("status") == ACTIVE]
        if not found:
            raise EcsError("ServiceNotFoundException", "Service not found.")
        service = found[0]
        sim = self.services.get(service["serviceArn"]) or self._adopt(service, self.clock.timestamp())
        if sim.controller != "EXTERNAL":
            raise EcsError(
                "InvalidParameterException",
                "Task sets can be managed only for services that use the EXTERNAL deployment controller.",
            )
        return sim

    @staticmethod
    def _task_set(sim: SimService, ref: str | None) -> SimTaskSet:
        for task_set in sim.task_sets:
            if ref in (task_set.arn, task_set.id):
                return task_set
        raise EcsError("TaskSetNotFoundException", "The specified task set does not exist.")

    @staticmethod
    def _scale(params: Json) -> float:
        scale = params.get("scale")
        if scale is None:
            return 100.0
        value = float(scale.get("value", 0.0))
        if scale.get("unit", "PERCENT") != "PERCENT" or not 0.0 <= value <= 100.0:
            raise EcsError("InvalidParameterException", "scale must be a PERCENT value between 0 and 100.")
        return value

    def create_task_set(self, call: Call) -> Reply:
        """CreateTaskSet: a new ACTIVE task set whose tasks start over time."""
        params = call.params
        sim = self._service_of(call)
        if not params.get("taskDefinition"):
            raise EcsError("InvalidParameterException", "taskDefinition is required.")
        if params.get("launchType") and params.get("capacityProviderStrategy"):
            raise EcsError(
                "InvalidParameterException",
                "Specifying both a launch type and capacity provider strategy is not supported. "
                "Remove one and try again.",
            )
        cluster = call.describe_cluster(params["cluster"])
        source = {
            k: params[k] for k in ("launchType", "capacityProviderStrategy", "platformVersion") if k in params
        }
        if not source.get("launchType") and not source.get("capacityProviderStrategy"):
            default = cluster.get("defaultCapacityProviderStrategy") or []
            source["capacityProviderStrategy" if default else "launchType"] = default or "EC2"
        if source.get("capacityProviderStrategy"):
            check_capacity_strategy(cluster, source["capacityProviderStrategy"])
        source["networkConfiguration"] = params.get("networkConfiguration")
        fields = _compute_fields(source)
        for name in ("loadBalancers", "serviceRegistries"):
            fields[name] = copy.deepcopy(params.get(name) or [])
        described = self._describe_task_definition(call, params["taskDefinition"])
        at = self.clock.timestamp()
        task_set_id = self._deployment_id()
        cluster_name, service_name = sim.cluster_arn.rsplit("/", 1)[-1], sim.arn.rsplit("/", 1)[-1]
        task_set = SimTaskSet(
            id=task_set_id,
            arn=call.arn(f"task-set/{cluster_name}/{service_name}/{task_set_id}"),
            external_id=params.get("externalId"),
            task_definition=described["taskDefinitionArn"],
            images=_images(described),
            created_at=at,
            updated_at=at,
            fields=fields,
            scale=self._scale(params),
            tags=copy.deepcopy(params.get("tags") or []),
        )
        sim.task_sets.append(task_set)
        self._restabilise(task_set, self._computed(sim, task_set), at)
        task_set.stability_at = at
        self._wake(sim, at)
        return Reply(200, {"taskSet": self._render_task_set(sim, task_set, tags=True)})

    def describe_task_sets(self, call: Call) -> Reply:
        sim = self._service_of(call)
        tags = "TAGS" in (call.params.get("include") or [])
        refs = call.params.get("taskSets")
        if refs is None:
            rendered = [self._render_task_set(sim, ts, tags) for ts in self._ordered(sim)]
            return Reply(200, {"taskSets": rendered, "failures": []})
        found, failures = [], []
        for ref in refs:
            try:
                found.append(self._render_task_set(sim, self._task_set(sim, ref), tags))
            except EcsError:
                failures.append({"arn": ref, "reason": "MISSING"})
        return Reply(200, {"taskSets": found, "failures": failures})

    def update_task_set(self, call: Call) -> Reply:
        """UpdateTaskSet: a new scale; tasks start or stop from the next tick."""
        sim = self._service_of(call)
        task_set = self._task_set(sim, call.params.get("taskSet"))
        if task_set.status == DRAINING:
            raise EcsError("InvalidParameterException", "The task set is being deleted.")
        at = self.clock.timestamp()
        task_set.scale = self._scale({"scale": call.params.get("scale") or {}})
        task_set.updated_at = at
        self._restabilise(task_set, self._computed(sim, task_set), at)
        self._wake(sim, at)
        return Reply(200, {"taskSet": self._render_task_set(sim, task_set)})

    def update_service_primary_task_set(self, call: Call) -> Reply:
        """UpdateServicePrimaryTaskSet: this one PRIMARY, the previous primary ACTIVE."""
        sim = self._service_of(call)
        task_set = self._task_set(sim, call.params.get("primaryTaskSet"))
        if task_set.status == DRAINING:
            raise EcsError("InvalidParameterException", "A DRAINING task set cannot become primary.")
        at = self.clock.timestamp()
        for other in sim.task_sets:
            if other.status == PRIMARY and other is not task_set:
                other.status, other.updated_at = ACTIVE, at
        if task_set.status != PRIMARY:
            task_set.status, task_set.updated_at = PRIMARY, at
            self._event(sim, at, f"updated the primary task set to {task_set.id}.")
        return Reply(200, {"taskSet": self._render_task_set(sim, task_set)})

    def delete_task_set(self, call: Call) -> Reply:
        """DeleteTaskSet: DRAINING now, gone on the next tick; without ``force`` it must run no task."""
        sim = self._service_of(call)
        task_set = self._task_set(sim, call.params.get("taskSet"))
        if not call.params.get("force") and (task_set.running or self._computed(sim, task_set)):
            raise EcsError(
                "InvalidParameterException",
                "The task set cannot be deleted until it is scaled down to zero; use force to delete it now.",
            )
        at = self.clock.timestamp()
        if task_set.status != DRAINING:
            task_set.status, task_set.updated_at = DRAINING, at
            self._restabilise(task_set, 0, at)
        self._wake(sim, at)
        return Reply(200, {"taskSet": self._render_task_set(sim, task_set)})

    # -- control API -----------------------------------------------------------------------------

    def configure(
        self,
        *,
        failure_pattern: str | None = None,
        task_start_seconds: float | None = None,
        speed: float | None = None,
        alarm_poll_seconds: float | None = None,
    ) -> None:
        """Change settings; what is already due is replayed with the old ones first."""
        with self.lock:
            self.catch_up()
            if alarm_poll_seconds is not None:
                if alarm_poll_seconds <= 0:
                    raise ValueError("alarmPollSeconds must be positive")
                self.service_deployments.alarm_poll_seconds = float(alarm_poll_seconds)
            if task_start_seconds is not None:
                if task_start_seconds <= 0:
                    raise ValueError("taskStartSeconds must be positive")
                self.task_start_seconds = float(task_start_seconds)
            if failure_pattern is not None:
                self.failure_pattern = failure_pattern
            if speed is not None:
                self.clock.speed = speed
            now = self.clock.timestamp()
            for service in self.services.values():  # a task set that was broken may start now
                self._wake(service, now)

    def settings(self) -> Json:
        return {
            "now": self.clock.now().isoformat(),
            "manual": self.clock.manual,
            "speed": self.clock.speed,
            "taskStartSeconds": self.task_start_seconds,
            "failurePattern": self.failure_pattern,
            "alarmPollSeconds": self.service_deployments.alarm_poll_seconds,
        }

    def state(self) -> Json:
        """Everything simulated, as JSON (timestamps in ISO 8601): ``GET /_sandbox/state``."""
        with self.lock:
            self.catch_up()
            services = []
            for sim in self.services.values():
                item: Json = {
                    "serviceArn": sim.arn,
                    "controller": sim.controller,
                    "desiredCount": sim.desired,
                    "nextTickAt": _iso(sim.next_tick) if sim.next_tick is not None else None,
                    "deployments": [d.render(sim.desired) for d in sim.deployments],
                    "taskSets": [self._render_task_set(sim, ts) for ts in self._ordered(sim)],
                    "events": list(reversed(sim.events)),
                    "serviceDeployments": self.service_deployments.state(sim.arn),
                }
                services.append(_iso_times(item))
            hooks = _iso_times({"invocations": self.service_deployments.invocations})
            return {**self.settings(), "services": services, "hookInvocations": hooks["invocations"]}

    def _control_advance(self, _match: re.Match[str], body: Json) -> Json:
        seconds = body.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise ValueError('expected {"seconds": <number>}')
        self.clock.advance(float(seconds))
        self.catch_up()
        return {"now": self.clock.now().isoformat()}

    def _control_config(self, _match: re.Match[str], body: Json) -> Json:
        unknown = set(body) - {"failurePattern", "taskStartSeconds", "speed", "alarmPollSeconds"}
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        pattern = body.get("failurePattern")
        if pattern is not None and not isinstance(pattern, str):
            raise ValueError("failurePattern must be a string")
        seconds, speed, poll = body.get("taskStartSeconds"), body.get("speed"), body.get("alarmPollSeconds")
        self.configure(
            failure_pattern=pattern,
            task_start_seconds=float(seconds) if seconds is not None else None,
            speed=float(speed) if speed is not None else None,
            alarm_poll_seconds=float(poll) if poll is not None else None,
        )
        return self.settings()


def _iso(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat()


def _iso_times(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _iso_times(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso_times(v) for v in value]
    if key.endswith("At") and isinstance(value, int | float) and not isinstance(value, bool):
        return _iso(value)
    return value
