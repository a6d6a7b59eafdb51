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
* **BLUE_GREEN / LINEAR / CANARY** with a blue revision running: the record owns the deployment (lifecycle
  stages, hooks, alarms, rollback): :mod:`agent.sandbox.simulation.deployment_lifecycle`.

This module owns :class:`ServiceDeployments`: the records of one simulator, their wiring into the overlay,
the hook results a test sets (``POST /_sandbox/hooks``), and the calls the simulator makes when one of its
deployments starts, completes or fails. The four APIs and their replies are
:mod:`agent.sandbox.simulation.deployment_api`; the checks on CreateService / UpdateService,
:mod:`agent.sandbox.simulation.deployment_checks`; the records,
:mod:`agent.sandbox.simulation.deployment_records`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.sandbox.simulation.deployment_api import ServiceDeploymentApi
from agent.sandbox.simulation.deployment_checks import check_controller_switch, check_deployment_request
from agent.sandbox.simulation.deployment_lifecycle import NativeLifecycle, alarm_state
from agent.sandbox.simulation.deployment_records import (
    DEFAULT_ALARM_POLL_SECONDS,
    HOOK_RESULTS,
    HOOK_STAGES,
    IN_PROGRESS,
    NATIVE_STRATEGIES,
    PENDING,
    ROLLBACK_IN_PROGRESS,
    ROLLBACK_SUCCESSFUL,
    STOP_REQUESTED,
    STOPPED,
    SUCCESSFUL,
    HookRun,
    SimServiceDeployment,
)
from agent.sandbox.simulation.model import Json, SimDeployment, SimService, SimulatorPort

if TYPE_CHECKING:
    from agent.sandbox.overlay.dispatch import EcsOverlay

__all__ = [
    "HOOK_RESULTS",
    "HOOK_STAGES",
    "NATIVE_STRATEGIES",
    "HookRun",
    "ServiceDeployments",
    "SimServiceDeployment",
    "alarm_state",
    "check_controller_switch",
    "check_deployment_request",
    "deployment_revision",
]


class ServiceDeployments(NativeLifecycle, ServiceDeploymentApi):
    """Records, drives and serves service deployments for a :class:`~agent.sandbox.simulator.Simulator`."""

    def __init__(
        self, simulator: SimulatorPort, alarm_poll_seconds: float = DEFAULT_ALARM_POLL_SECONDS
    ) -> None:
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
        self,
        service: SimService,
        deployment: SimDeployment,
        rollback: SimDeployment | None,
        at: float,
        cause: str = "the circuit breaker detected tasks failing to start",
    ) -> None:
        """The circuit breaker or an alarm (``cause``) failed a rolling deployment (and, with rollback on,
        started ``rollback``)."""
        for record in self.by_service.get(service.arn, []):
            if record.target is deployment and record.status == IN_PROGRESS:
                reason = f"Service deployment failed: {cause}."
                if rollback is None:
                    record.status, record.stopped_at = STOPPED, at
                    record.status_reason, record.updated_at = reason, at
                    continue
                record.rollback_to = rollback
                rollback.revision_arn = deployment_revision(rollback, service)
                self._roll_back(record, reason.replace("failed:", "rolled back because", 1), at)
                record.status = ROLLBACK_IN_PROGRESS

    def has_work(self, service: SimService) -> bool:
        return self.current(service) is not None

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
