"""ECS-controller (rolling) deployments in the simulator: one task per tick, the circuit breaker, and the
rollback to the last completed deployment. Timing model (``T`` = ``task_start_seconds``):

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
* **Alarms.** With ``deploymentConfiguration.alarms`` enabled, ECS watches the alarms while the
  deployment is IN_PROGRESS: on the first tick one of them is in ALARM the deployment turns FAILED (its
  reason and the service event name the alarms) and, with the alarms' ``rollback`` on, rolls back to the
  last COMPLETED deployment exactly as the circuit breaker does (the rollback itself is not failed by
  the alarm that caused it). (Developer Guide, "How CloudWatch alarms
  detect Amazon ECS deployment failures": "When the alarm is triggered, the deployment fails. ... If you
  configured rollback, Amazon ECS rolls back the deployment to the last completed deployment.")

BLUE_GREEN, LINEAR and CANARY deployments are driven by :mod:`agent.sandbox.service_deployments`
instead (:meth:`RollingDeployments._tick_deployments` hands them over).
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

from agent.sandbox.simulation.deployment_lifecycle import alarm_state
from agent.sandbox.simulation.model import (
    ACTIVE,
    CIRCUIT_BREAKER_REASON,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    INACTIVE,
    Json,
    SimDeployment,
    SimService,
    failure_threshold,
)

if TYPE_CHECKING:
    from agent.sandbox.service_deployments import ServiceDeployments


class RollingDeployments:
    """The ECS controller's deployments, mixed into :class:`~agent.sandbox.simulator.Simulator` (which
    provides the ids, events, ``_broken`` and :attr:`service_deployments` used here)."""

    service_deployments: ServiceDeployments

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
        if (
            primary.rollout_state == IN_PROGRESS
            and not primary.rollback
            and self._alarms_failed(service, primary, at)
        ):
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

    def _alarms_failed(self, service: SimService, primary: SimDeployment, at: float) -> bool:
        """Fail (and with ``rollback`` roll back) the deployment when one of its alarms is in ALARM."""
        alarms = service.deployment_configuration.get("alarms") or {}
        if not alarms.get("enable") or not alarms.get("alarmNames"):
            return False
        firing = [n for n in alarms["alarmNames"] if alarm_state(service.arn, n) == "ALARM"]
        if not firing:
            return False
        names = ", ".join(firing)
        self._fail(
            service,
            primary,
            at,
            reason=f"ECS deployment {primary.id} failed: alarm(s) {names} went into ALARM.",
            event=f"(deployment {primary.id}) deployment failed: alarm(s) {names} detected.",
            rollback=bool(alarms.get("rollback")),
            cause=f"the CloudWatch alarm(s) {names} went into ALARM",
        )
        return True

    def _fail(
        self,
        service: SimService,
        failed: SimDeployment,
        at: float,
        reason: str = CIRCUIT_BREAKER_REASON,
        event: str = "",
        rollback: bool | None = None,
        cause: str = "",
    ) -> None:
        failed.rollout_state = FAILED
        failed.reason = reason
        failed.updated_at = at
        event = event or f"(deployment {failed.id}) deployment failed: tasks failed to start."
        self._event(service, at, event)
        roll_back = service.config["rollback"] if rollback is None else rollback
        started = self._rollback_rolling(service, failed, at) if roll_back else None
        self.service_deployments.failed(service, failed, started, at, *([cause] if cause else []))

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
            rollback=True,
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
