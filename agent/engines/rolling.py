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
from agent.plan.diff import diff
from agent.plan.model import ABSENT, CREATE, NO_CHANGE, REUSE, UPDATE
from agent.plan.revisions import running_task_definition
from agent.plan.services import engine_of
from agent.plan.taskdefs import family_revision, normalise_task_definition
from agent.rollout import rolling
from agent.rollout.decisions import APPLY, SUCCESS, Decision, RolloutRecord

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
                residual=residual(tick, s),
            )
            for s in subjects
        }

    def decide(self, tick: Tick, subject: Subject, observation: Any, now: datetime) -> Decision:
        early = held(subject, now)
        if early is not None:
            return early
        record = RolloutRecord.from_json(subject.stored)
        decision = rolling.advance(record, observation, tick.sha, now)
        if (
            observation.residual
            and decision.state == SUCCESS
            and record
            and record.result != rolling.SUCCEEDED
        ):
            log.warning(
                "rollout.residual_diff",
                service=subject.name,
                fields=list(observation.residual),
                message=rolling.residual_warning(observation.residual, limit=len(observation.residual)),
            )
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


def residual(tick: Tick, subject: Subject) -> tuple[str, ...]:
    """The fields in which ECS describes what this service already runs differently from Git, when that
    is the only difference left (see agent.rollout.rolling); () when anything else differs.

    The task definition counts when the plan reuses the very revision the service runs (its content-hash
    tag says it was registered for this content, so whatever differs is how ECS describes it), and when
    the plan is in sync with a revision the agent registered whose RegisterTaskDefinition answer held
    fields the request did not (``Observed.echoed``: the tag proves it ours, the answer shows what ECS
    added); service fields count when the manifest does not set them at all."""
    fields: list[str] = []
    td = subject.td_change
    if td is not None and td.action == NO_CHANGE and not td.fields:
        running = running_task_definition(subject.live or {})
        fields += [f"/taskDefinition{f}" for f in tick.observed.echoed.get(running or "", ())]
    elif td is not None:
        arn = td.request.get("taskDefinitionArn")
        current = tick.observed.task_definitions.get(arn) if arn else None
        tdf = tick.desired.task_definitions.get(subject.family or "")
        if td.action != REUSE or current is None or tdf is None:
            return ()
        if arn != running_task_definition(subject.live or {}):
            return ()
        wanted = normalise_task_definition(tdf.body)
        fields += [f"/taskDefinition{f.path}" for f in diff(normalise_task_definition(current), wanted)]
    service = subject.service_change
    if service is not None and service.changes_anything:
        if service.action != UPDATE or service.hold is not None:
            return ()
        if any(f.new is not ABSENT for f in service.fields):
            return ()
        fields += [f.path for f in service.fields]
    return tuple(fields)


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
