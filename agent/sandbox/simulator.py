"""The ECS behaviour moto lacks: deployments and task sets that move forward with a clock.

moto stores services but never runs them: every deployment stays IN_PROGRESS, UpdateService makes no
new deployment, no task starts, and CreateTaskSet crashes (HTTP 500) on Fargate task definitions. The
:class:`Simulator` owns that behaviour. It plugs into :class:`~agent.sandbox.overlay.EcsOverlay`
(:meth:`Simulator.install`): post-processors replace moto's ``deployments`` / ``taskSets`` / counts /
``events`` in CreateService, UpdateService, DescribeServices and DeleteService replies, and handlers
serve the five task-set operations without moto, and the tasks of its services (ListTasks, DescribeTasks:
:mod:`agent.sandbox.simulation.service_tasks`).

State is a deterministic function of the :class:`SandboxClock`: before every ECS request (and every
control request) the simulator *catches up* to ``clock.now()`` by replaying the ticks that fell due, so
there is no background thread, and a test that advances a manual clock sees exactly the same result
every time. Ids come from a seeded generator, so they repeat too.

Timing model (``T`` = ``task_start_seconds``, default 2 s). Each service with work to do ticks every
``T`` seconds from the moment the work appeared (a create, an update, a task-set change); an idle
service does not tick. On each tick:

* **ECS controller (rolling)** and **broken images**: :mod:`agent.sandbox.simulation.rolling`.
* **EXTERNAL controller (task sets)** and **CODE_DEPLOY controller**:
  :mod:`agent.sandbox.simulation.task_sets`.
* **Services as the replies report them** (deployments, task sets, counts, events, and the deployment an
  update starts): :mod:`agent.sandbox.simulation.service_replies`.
* **Service deployments.** Every ECS-controller deployment is also a service deployment
  (ListServiceDeployments and friends), and a service whose ``deploymentConfiguration.strategy`` is
  BLUE_GREEN, LINEAR or CANARY goes through ECS's lifecycle stages, hooks, traffic steps, bake and
  rollback instead of the rolling steps: :mod:`agent.sandbox.service_deployments`
  (:attr:`Simulator.service_deployments`).

This module owns the :class:`Simulator` itself: its wiring into the overlay, the catch-up with the clock,
ids, events, and the control API (``/_sandbox/clock``, ``/_sandbox/state``, ``/_sandbox/config``). The
records it keeps are :mod:`agent.sandbox.simulation.model`'s; the clock is
:class:`~agent.sandbox.simulation.clock.SandboxClock`.

Not modelled: health-check grace periods, placement, capacity (any number of tasks fits), and the
listener rules' weights during a native deployment (it reports its requested traffic weights; the
rules in moto keep theirs). CloudWatch alarms are moto's own and change only when set
(``Sandbox.set_alarm``); Lambda Invoke is :mod:`agent.sandbox.lambdas`.
"""

from __future__ import annotations

import fnmatch
import random
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.sandbox.service_deployments import ServiceDeployments
from agent.sandbox.simulation.clock import SandboxClock
from agent.sandbox.simulation.model import (
    ACTIVE,
    CIRCUIT_BREAKER_REASON,
    CODE_DEPLOY,
    COMPLETED,
    DEFAULT_FAILURE_PATTERN,
    DEFAULT_TASK_START_SECONDS,
    DRAINING,
    FAILED,
    IN_PROGRESS,
    INACTIVE,
    MAX_EVENTS,
    PRIMARY,
    SEED,
    STABILIZING,
    STEADY_STATE,
    Json,
    SimDeployment,
    SimService,
    SimTaskSet,
    failure_threshold,
)
from agent.sandbox.simulation.rolling import RollingDeployments
from agent.sandbox.simulation.service_replies import ServiceReplies
from agent.sandbox.simulation.service_tasks import ServiceTasks
from agent.sandbox.simulation.task_sets import TaskSets

if TYPE_CHECKING:
    from agent.sandbox.overlay.dispatch import EcsOverlay

__all__ = [
    "ACTIVE",
    "CIRCUIT_BREAKER_REASON",
    "CODE_DEPLOY",
    "COMPLETED",
    "DEFAULT_FAILURE_PATTERN",
    "DEFAULT_TASK_START_SECONDS",
    "DRAINING",
    "FAILED",
    "INACTIVE",
    "IN_PROGRESS",
    "MAX_EVENTS",
    "PRIMARY",
    "STABILIZING",
    "STEADY_STATE",
    "SandboxClock",
    "SimDeployment",
    "SimService",
    "SimTaskSet",
    "Simulator",
    "failure_threshold",
]

ControlHandler = Callable[[re.Match[str], Json], Json]


class Simulator(RollingDeployments, TaskSets, ServiceReplies, ServiceTasks):
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
        # Control API: (method, path regex, handler); the service deployments add POST /_sandbox/hooks.
        self.routes: list[tuple[str, re.Pattern[str], ControlHandler]] = [
            ("POST", re.compile(r"^/_sandbox/clock/advance$"), self._control_advance),
            ("GET", re.compile(r"^/_sandbox/clock$"), lambda _m, _b: self._control_clock()),
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
            "ListTasks": self.list_tasks,
            "DescribeTasks": self.describe_tasks,
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

    def _control_clock(self) -> Json:
        """``GET /_sandbox/clock``: the time, and how fast it runs (0 for a clock only ``advance`` moves)."""
        return {"now": self.clock.now().isoformat(), "speed": 0 if self.clock.manual else self.clock.speed}

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
