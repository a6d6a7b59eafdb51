"""The native engine (``engine: ecs``): ECS runs the blue/green, linear or canary deployment; the agent
starts it, gates it and follows it.

Every service whose strategy is blueGreen, linear or canary with ``engine: ecs`` is this engine's. It
reads what the pure follower (agent.rollout.native) needs: the service deployment in flight, the rollback
alarms while it is in flight, and the service's windows evaluated now. ECS is read on every tick, the
stored record is only a hint: the service deployments are listed while the record says a rollout is in
progress, and whenever DescribeServices (already made by the planner) does not prove the service steady
(one PRIMARY deployment, COMPLETED): a steady service costs no call, a service with a deployment the
record does not know of (a crash after UpdateService reached ECS, a lost store) one ListServiceDeployments
and one DescribeServiceDeployments. ``APPLY`` goes through the same executor as every engine
(UpdateService with the deployment configuration the planner built); the rest of a decision is
StopServiceDeployment(ROLLBACK) and ContinueServiceDeployment at the agent's PAUSE hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import structlog

from agent.aws.deployments import ServiceDeployments, to_deployment
from agent.aws.errors import AwsPermanentError
from agent.aws.pacing import Pacer
from agent.engines.base import Step, Subject, Tick, apply_service, held
from agent.engines.gating import windows_of
from agent.plan.services import engine_of
from agent.plan.taskdefs import family_revision
from agent.rollout import native
from agent.rollout.decisions import APPLY, FAILURE, Decision
from agent.rollout.windows import gate
from agent.status.model import truncate

log = structlog.get_logger()


class NativeEngine:
    """Observes and drives ECS-native service deployments."""

    name: ClassVar[str] = "native"

    def __init__(self, *, aws: Any, pacer: Pacer | None = None, **_: Any) -> None:
        self.deployments = ServiceDeployments(aws, pacer)

    @staticmethod
    def claims(subject: Subject, tick: Tick) -> bool:
        return engine_of(subject.strategy) == "ecs"

    def observe(self, tick: Tick, subjects: Sequence[Subject], now: datetime) -> dict[str, Any]:
        return {s.name: self._observe(tick, s, now) for s in subjects}

    def _observe(self, tick: Tick, subject: Subject, now: datetime) -> native.Observation:
        record = native.NativeRecord.from_json(subject.stored)
        strategy = native.Strategy.from_spec(subject.strategy or {})
        service = subject.live
        deployment: native.Deployment | None = None
        alarms: dict[str, str] = {}
        following = record is not None and record.result == native.IN_PROGRESS
        if service is not None and (following or not steady(service)):
            since = (
                datetime.fromisoformat(record.started_at)
                if record is not None and following and record.applied
                else None
            )
            known = record.deployment if record is not None and following else None
            raw = self.deployments.find(subject.cluster, subject.service, known, since)
            deployment = to_deployment(raw) if raw else None
            if deployment is not None and deployment.in_flight and strategy.alarms:
                alarms = self.deployments.alarm_states(strategy.alarms)
        current = service.get("taskDefinition") if service else None
        return native.Observation(
            sha=tick.sha,
            fingerprint=subject.fingerprint,
            in_sync=subject.in_sync,
            target=subject.target,
            current=family_revision(current) if current else None,
            deployment=deployment,
            gate=gate(windows_of(subject.manifest, tick.desired), now),
            alarms=alarms,
            tasks=(int(service.get("runningCount", 0)), int(service.get("desiredCount", 0)))
            if service
            else None,
            source=older_revision(service),
        )

    def decide(self, tick: Tick, subject: Subject, observation: Any, now: datetime) -> Decision:
        early = held(subject, now)
        if early is not None:
            return early
        record = native.NativeRecord.from_json(subject.stored)
        strategy = native.Strategy.from_spec(subject.strategy or {})
        return native.advance(record, observation, strategy, now)

    def starts(self, observation: Any, decision: Decision) -> bool:
        return False  # an APPLY is held by the ordering gate as such; a stop or continue never is

    def act(
        self, tick: Tick, subject: Subject, observation: Any, decision: Decision, step: Step
    ) -> Decision | None:
        """APPLY through the executor, then the StopServiceDeployment / ContinueServiceDeployment calls in
        order. One AWS refuses is reported on the commit; the record is kept, so the next tick reads the
        deployment again and retries."""
        if APPLY in decision.actions:
            log.info(
                "rollout.apply",
                service=subject.name,
                engine="ecs",
                changes=[str(subject.family), f"Service/{subject.context}"],
            )
            apply_service(tick, subject, step)
        try:
            self._deployment_calls(subject.name, decision)
        except AwsPermanentError as e:
            log.warning("deployment.action_failed", service=subject.name, error=str(e))
            return Decision(
                (), decision.record, FAILURE, truncate(str(e)), decision.wake_at, decision.other_commits
            )
        return None

    def _deployment_calls(self, service: str, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, native.StopDeployment):
                stopped = self.deployments.stop(action.deployment)
                log.info("deployment.stop", service=service, reason=action.reason, stopped=stopped)
            elif isinstance(action, native.ContinueDeployment):
                try:
                    self.deployments.resume(action.deployment, action.hook_id, action.action)
                except AwsPermanentError as e:
                    if e.code not in ("InvalidParameterException", "ClientException"):
                        raise
                    # The hook is no longer waiting (it timed out, or ECS moved on): read it again next tick.
                    log.info("deployment.continue_skipped", service=service, reason=str(e))
                    continue
                log.info("deployment.continue", service=service, action=action.action)


def _listed(service: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [d for d in service.get("deployments") or () if d.get("status") != "INACTIVE"]


def steady(service: Mapping[str, Any]) -> bool:
    """True when DescribeServices proves that no deployment is moving: one PRIMARY deployment, COMPLETED."""
    listed = _listed(service)
    return (
        len(listed) == 1
        and listed[0].get("status") == "PRIMARY"
        and listed[0].get("rolloutState") == "COMPLETED"
    )


def older_revision(service: Mapping[str, Any] | None) -> str | None:
    """``family:revision`` of the newest deployment besides the PRIMARY one (blue while green rolls out)."""
    if not service:
        return None
    others = [d for d in _listed(service) if d.get("status") != "PRIMARY" and d.get("taskDefinition")]
    return family_revision(others[0]["taskDefinition"]) if others else None
