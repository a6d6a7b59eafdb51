"""The rolling engine: ECS replaces tasks itself (circuit breaker, alarms); the agent applies and follows.

Every service whose strategy is ``rolling`` (or names none), and creating an ``engine: agent`` service
(there is no task set to shift traffic from yet), is this engine's. It reads nothing of its own: the
deployments come with the DescribeServices the planner already made. The pure follower is
agent.rollout.rolling; its APPLY is held by the service's windows (agent.engines.gating) and carried
out by the executor: the family's new revision once per tick, then UpdateService or CreateService.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import structlog

from agent.engines.base import Step, Subject, Tick, apply_service, held
from agent.engines.gating import gate_of, hold_for_windows
from agent.plan.model import CREATE
from agent.plan.services import engine_of
from agent.plan.taskdefs import family_revision
from agent.rollout import rolling
from agent.rollout.decisions import APPLY, Decision, RolloutRecord

log = structlog.get_logger()


class RollingEngine:
    """ECS's own rolling update, applied by the agent and followed through the service's deployments."""

    name: ClassVar[str] = "rolling"

    def __init__(self, **_: Any) -> None:
        pass

    @staticmethod
    def claims(subject: Subject, tick: Tick) -> bool:
        return True  # the last engine asked: everything the others leave

    def observe(self, tick: Tick, subjects: Sequence[Subject], now: datetime) -> dict[str, Any]:
        return {
            s.name: rolling.Observation(
                in_sync=s.in_sync,
                fingerprint=s.fingerprint,
                target=s.target,
                deployments=deployments(s.live),
                events=tuple(e.get("message", "") for e in (s.live or {}).get("events", ())[:20]),
            )
            for s in subjects
        }

    def decide(self, tick: Tick, subject: Subject, observation: Any, now: datetime) -> Decision:
        early = held(subject, now)
        if early is not None:
            return early
        record = RolloutRecord.from_json(subject.stored)
        decision = rolling.advance(record, observation, tick.sha, now)
        if APPLY in decision.actions:
            creating = subject.service_change is not None and subject.service_change.action == CREATE
            decision = hold_for_windows(
                decision, record, gate_of(subject.manifest, tick.desired, now), creating
            )
        return decision

    def starts(self, observation: Any, decision: Decision) -> bool:
        return False  # an APPLY is held by the ordering gate as such

    def act(
        self, tick: Tick, subject: Subject, observation: Any, decision: Decision, step: Step
    ) -> Decision | None:
        if APPLY in decision.actions:
            log.info(
                "rollout.apply",
                service=subject.name,
                engine=engine_of(subject.strategy),
                changes=[str(subject.family), f"Service/{subject.context}"],
            )
            apply_service(tick, subject, step)
        return None


def deployments(service: Mapping[str, Any] | None) -> tuple[rolling.Deployment, ...]:
    """ECS deployments, or for the EXTERNAL controller its task sets seen as deployments."""
    if not service:
        return ()
    if (service.get("deploymentController") or {}).get("type") == "EXTERNAL":
        return tuple(
            rolling.Deployment(
                "PRIMARY" if ts.get("status") == "PRIMARY" else "ACTIVE",
                family_revision(ts.get("taskDefinition", "")),
                "COMPLETED" if ts.get("stabilityStatus") == "STEADY_STATE" else "IN_PROGRESS",
                "",
                int(ts.get("runningCount", 0)),
                int(ts.get("computedDesiredCount", 0)),
            )
            for ts in service.get("taskSets") or ()
        )
    return tuple(
        rolling.Deployment(
            d.get("status", ""),
            family_revision(d.get("taskDefinition", "")),
            d.get("rolloutState"),
            d.get("rolloutStateReason", ""),
            int(d.get("runningCount", 0)),
            int(d.get("desiredCount", 0)),
        )
        for d in service.get("deployments") or ()
    )
