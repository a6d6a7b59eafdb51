"""What the simulator knows of a service: its deployments, task sets and events, as plain records.

:class:`SimService`, :class:`SimDeployment` and :class:`SimTaskSet` are shared by the simulator
(:mod:`agent.sandbox.simulator`) and the service deployments (:mod:`agent.sandbox.service_deployments`);
:class:`SimulatorPort` is what the service deployments may ask of the simulator that owns them, so
that neither module imports the other.
"""

from __future__ import annotations

import copy
import math
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.sandbox.overlay.calls import Call
from agent.sandbox.overlay.capacity_providers import FARGATE_PROVIDERS, normalise_strategy
from agent.sandbox.simulation.clock import SandboxClock

Json = dict[str, Any]

DEFAULT_TASK_START_SECONDS = 2.0
DEFAULT_FAILURE_PATTERN = "*:broken*"
MAX_EVENTS = 100  # DescribeServices returns at most the 100 newest events
CIRCUIT_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."
PRIMARY, ACTIVE, INACTIVE, DRAINING = "PRIMARY", "ACTIVE", "INACTIVE", "DRAINING"
IN_PROGRESS, COMPLETED, FAILED = "IN_PROGRESS", "COMPLETED", "FAILED"
STEADY_STATE, STABILIZING = "STEADY_STATE", "STABILIZING"
CODE_DEPLOY = "CODE_DEPLOY"
TASK_SET_ONLY = ("loadBalancers", "serviceRegistries")  # task-set fields a Deployment does not have
SEED = 20141113  # ids repeat from one sandbox to the next


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
    rollback: bool = False  # started by ECS to roll a failed deployment back (no alarms watched on it)

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


def deployment_config(service: Json) -> Json:
    config = service.get("deploymentConfiguration") or {}
    breaker = config.get("deploymentCircuitBreaker") or {}
    return {
        "maximumPercent": int(config.get("maximumPercent", 200)),
        "minimumHealthyPercent": int(config.get("minimumHealthyPercent", 100)),
        "circuitBreaker": bool(breaker.get("enable")),
        "rollback": bool(breaker.get("rollback")),
    }


def uses_fargate(record: Json) -> bool:
    strategy = record.get("capacityProviderStrategy")
    if strategy:
        return any(item.get("capacityProvider") in FARGATE_PROVIDERS for item in strategy)
    return record.get("launchType") == "FARGATE"


def sim_service(service: Json) -> SimService:
    """The simulator's record of a service, as CreateService (or moto, for one adopted) reports it."""
    return SimService(
        arn=service["serviceArn"],
        name=service["serviceName"],
        cluster_arn=service.get("clusterArn", ""),
        controller=(service.get("deploymentController") or {}).get("type", "ECS"),
        desired=int(service.get("desiredCount") or 0),
        config=deployment_config(service),
        deployment_configuration=copy.deepcopy(service.get("deploymentConfiguration") or {}),
        load_balancers=copy.deepcopy(service.get("loadBalancers") or []),
    )


def compute_fields(source: Json) -> Json:
    """launchType or capacityProviderStrategy, and platformVersion/Family on Fargate, like ECS reports."""
    out: Json = {}
    if source.get("capacityProviderStrategy"):
        out["capacityProviderStrategy"] = normalise_strategy(source["capacityProviderStrategy"])
    else:
        out["launchType"] = source.get("launchType") or "EC2"
    if uses_fargate(out):
        out["platformVersion"] = source.get("platformVersion") or "LATEST"
        out["platformFamily"] = "Linux"
    if (source.get("networkConfiguration") or {}).get("awsvpcConfiguration"):
        out["networkConfiguration"] = copy.deepcopy(source["networkConfiguration"])
    return out


def container_images(task_definition: Json) -> tuple[str, ...]:
    """The images of a described task definition, in container order."""
    return tuple(str(c.get("image", "")) for c in task_definition.get("containerDefinitions") or [])


class SimulatorPort(Protocol):
    """What :class:`~agent.sandbox.service_deployments.ServiceDeployments` uses of its simulator
    (:class:`~agent.sandbox.simulator.Simulator`): its clock, lock, services, ids and events, and the
    rolling steps a stopped or failed deployment needs."""

    clock: SandboxClock
    lock: threading.RLock
    services: dict[str, SimService]
    _rng: random.Random

    def catch_up(self) -> None: ...

    def _wake(self, service: SimService, now: float) -> None: ...

    def _broken(self, images: tuple[str, ...]) -> bool: ...

    def _uuid(self) -> str: ...

    def _task_ids(self, count: int) -> str: ...

    def _event(self, service: SimService, at: float, message: str) -> None: ...

    def _finish(self, service: SimService, deployment: SimDeployment, at: float) -> None: ...

    def _rollback_rolling(
        self, service: SimService, failed: SimDeployment, at: float
    ) -> SimDeployment | None: ...


def describe_task_definition(call: Call, task_definition: str) -> Json:
    """The task definition moto holds for a family, ``family:revision`` or ARN: its ARN and its
    containers, all that the simulator reads. A full ARN the sandbox registered comes from the overlay's
    record of that registration (the containers as registered), not from another round through moto."""
    record = call.state.task_definitions.get(task_definition)
    if record is not None and isinstance(record.get("containerDefinitions"), list):
        return {**record, "taskDefinitionArn": task_definition}
    return call.moto("DescribeTaskDefinition", {"taskDefinition": task_definition})["taskDefinition"]
