"""The ``ecs`` engine's part of the tick: read a service's native deployment, decide, act.

``Reconciler`` hands every service whose strategy runs on engine ecs (blueGreen, linear or canary with
``engine: ecs``) to :meth:`EcsEngine.decide` instead of the rolling engine. That reads what the pure
follower (:mod:`agent.rollout.native`) needs -- the service deployment in flight (only while the
service's rollout is in progress: a steady service costs no call), the rollback alarms while it is in
flight, and the service's windows evaluated now (``agent.engines.windows_of``, as for every engine) --
and returns its Decision. ``APPLY`` goes through the same executor as every engine (UpdateService with
the deployment configuration the planner built);
:meth:`EcsEngine.act` sends the rest: StopServiceDeployment(ROLLBACK) and ContinueServiceDeployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from agent.aws.deployments import ServiceDeployments, to_deployment
from agent.aws.errors import AwsPermanentError
from agent.aws.pacing import Pacer
from agent.engines import windows_of
from agent.manifests.model import Desired, Manifest
from agent.plan.services import resolve_strategy
from agent.plan.taskdefs import family_revision
from agent.rollout import native
from agent.rollout.decisions import Decision
from agent.rollout.windows import gate

log = structlog.get_logger()


class EcsEngine:
    """Observes and drives ECS-native deployments for the reconciler."""

    def __init__(self, aws: Any, pacer: Pacer | None = None) -> None:
        self.deployments = ServiceDeployments(aws, pacer)

    def decide(
        self,
        stored: Mapping[str, Any] | None,
        manifest: Manifest,
        desired: Desired,
        service: Mapping[str, Any] | None,
        *,
        in_sync: bool,
        fingerprint: str,
        target: str | None,
        sha: str,
        now: datetime,
    ) -> Decision:
        """The follower's decision for one service (``stored``: its record as the store holds it)."""
        record = native.NativeRecord.from_json(stored)
        spec = resolve_strategy(manifest.spec.get("strategy"), desired.strategies) or {}
        strategy = native.Strategy.from_spec(spec)
        cluster, name = manifest.spec["cluster"], manifest.spec.get("serviceName", manifest.name)
        deployment: native.Deployment | None = None
        alarms: dict[str, str] = {}
        if service is not None and record is not None and record.result == native.IN_PROGRESS:
            since = datetime.fromisoformat(record.started_at) if record.applied else None
            raw = self.deployments.find(cluster, name, record.deployment, since)
            deployment = to_deployment(raw) if raw else None
            if deployment is not None and deployment.in_flight and strategy.alarms:
                alarms = self.deployments.alarm_states(strategy.alarms)
        current = service.get("taskDefinition") if service else None
        observation = native.Observation(
            sha=sha,
            fingerprint=fingerprint,
            in_sync=in_sync,
            target=target,
            current=family_revision(current) if current else None,
            deployment=deployment,
            gate=gate(windows_of(manifest, desired), now),
            alarms=alarms,
            tasks=(int(service.get("runningCount", 0)), int(service.get("desiredCount", 0)))
            if service
            else None,
        )
        return native.advance(record, observation, strategy, now)

    def act(self, service: str, decision: Decision) -> None:
        """Send the decision's StopServiceDeployment / ContinueServiceDeployment calls, in order."""
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
