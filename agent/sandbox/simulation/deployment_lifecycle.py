"""The native lifecycle of a service deployment (stages, traffic steps, hooks, alarms) and how a
deployment ends (success, stop, rollback):

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
"""

from __future__ import annotations

from agent.sandbox.simulation.deployment_records import (
    AWAITING_ACTION,
    AWS_LAMBDA,
    BAKE_TIME,
    CLEAN_UP,
    DEFAULT_HOOK_TIMEOUT_MINUTES,
    FAILED,
    HOOK_STAGES,
    IN_PROGRESS,
    PAUSE,
    PENDING,
    POST_PRODUCTION_TRAFFIC_SHIFT,
    POST_SCALE_UP,
    POST_TEST_TRAFFIC_SHIFT,
    PRE_PRODUCTION_TRAFFIC_SHIFT,
    PRE_SCALE_UP,
    PRODUCTION_TRAFFIC_SHIFT,
    ROLLBACK,
    ROLLBACK_FAILED,
    ROLLBACK_IN_PROGRESS,
    ROLLBACK_REQUESTED,
    ROLLBACK_SUCCESSFUL,
    SCALE_UP,
    STOP_REQUESTED,
    STOPPED,
    SUCCEEDED,
    SUCCESSFUL,
    TEST_TRAFFIC_SHIFT,
    TIMED_OUT,
    HookRun,
    SimServiceDeployment,
)
from agent.sandbox.simulation.model import Json, SimService, SimulatorPort, failure_threshold


class NativeLifecycle:
    """Drives native service deployments, mixed into
    :class:`~agent.sandbox.service_deployments.ServiceDeployments` (which keeps the records and the hook
    results used here)."""

    sim: SimulatorPort
    alarm_poll_seconds: float
    hook_results: dict[tuple[str, str | None], str]
    invocations: list[Json]

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
                if green.failed >= failure_threshold(service.desired):
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
