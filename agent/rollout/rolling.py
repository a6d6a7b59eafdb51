"""The rolling engine: ECS replaces tasks (deployment circuit breaker on); the agent follows.

The phase is derived from what ECS reports, never stored twice. A worked example, one service whose
commit bumps the image (fingerprint F2, previously F1 running as web:4):

====  ========================================  ==============================  =========================
tick  observation                               record before                   decision
====  ========================================  ==============================  =========================
1     out of sync (plan: register + update)     F1 succeeded                    APPLY; record F2 in_progress;
                                                                                pending "rolling out"
2     in sync; PRIMARY web:5 IN_PROGRESS 1/4    F2 in_progress                  pending "1/4 tasks running"
3     in sync; PRIMARY web:5 COMPLETED 4/4      F2 in_progress                  success; record succeeded
====  ========================================  ==============================  =========================

With a broken image instead, ECS's circuit breaker fails the deployment and rolls back to web:4:

====  ========================================  ==============================  =========================
3'    out of sync; PRIMARY web:4 (rollback)     F2 in_progress                  failure "rolled back: ..."
4'    out of sync                               F2 failed                       failure, no action: the
                                                                                same content is not retried
====  ========================================  ==============================  =========================

A later commit with different content (a fix, or a revert to F1) has a new fingerprint and applies.

Success and failure come from ECS (the PRIMARY deployment's rolloutState and reason, the service's
"deployment failed" events), never from the plan still differing. When ECS completed the revision Git
asks for but describes fields the manifests do not say (``residual``: a default ECS added that the
normaliser does not know, say), the rollout is a success with a warning naming them, and later ticks stay
at success without applying again. The same warning is given in sync, when the revision the service runs
was registered by the agent and ECS's answer to RegisterTaskDefinition held fields the request did not
(its content-hash tag proves the revision ours, so the plan has no difference to show, but the answer does):

====  ========================================  ==============================  =========================
3"    out of sync only by residual fields;      F2 in_progress                  success "web:5 running 4/4;
      PRIMARY web:5 COMPLETED 4/4                                               ECS returned /x that ..."
4"    the same                                  F2 succeeded                    the same, no action
====  ========================================  ==============================  =========================
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .decisions import APPLY, FAILURE, PENDING, SUCCESS, Decision, RolloutRecord

POLL = timedelta(seconds=5)
IN_PROGRESS, SUCCEEDED, FAILED = "in_progress", "succeeded", "failed"


@dataclass(frozen=True)
class Deployment:
    """The parts of a DescribeServices deployment the engine reads."""

    status: str  # PRIMARY | ACTIVE | INACTIVE
    task_definition: str  # family:revision
    rollout_state: str | None  # IN_PROGRESS | COMPLETED | FAILED (None on old services)
    reason: str = ""
    running: int = 0
    desired: int = 0


@dataclass(frozen=True)
class Observation:
    """One service as the planner and ECS see it on this tick."""

    in_sync: bool  # the plan changes nothing for this service (task definition included)
    fingerprint: str  # of the desired content
    target: str | None  # family:revision desired, when known ("web:(new)" before registration)
    deployments: tuple[Deployment, ...] = ()
    events: tuple[str, ...] = ()  # the service's event messages, newest first
    # When the only difference left is in what ECS describes of the content this service already runs
    # (the revision registered for this very content, or service fields the manifest does not set), or
    # when in sync, the fields ECS added on registering the revision it runs: those fields. Empty otherwise.
    residual: tuple[str, ...] = ()

    @property
    def primary(self) -> Deployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)


def advance(record: RolloutRecord | None, obs: Observation, sha: str, now: datetime) -> Decision:
    """Decide the next step of a rolling deployment (see the module docstring for worked examples)."""
    mine = record is not None and record.fingerprint == obs.fingerprint
    if obs.in_sync:
        return _warn_residual(_follow(record if mine else None, obs, sha, now), obs.residual)
    if mine and record is not None and record.result == FAILED:
        return Decision((), record, FAILURE, record.reason or "rollout failed; fix or revert the commit")
    if mine and record is not None and obs.residual and _on_target(obs):
        # ECS runs what was applied and only describes it differently: its deployment decides.
        return _warn_residual(_follow(record, obs, sha, now), obs.residual)
    if mine and record is not None and record.result == IN_PROGRESS:
        # We had applied this content and ECS now runs something else: the circuit breaker rolled back.
        reason = _cut(f"rolled back: {_failure_reason(obs)}")
        return Decision((), replace(record, result=FAILED, reason=reason), FAILURE, reason)
    started = RolloutRecord(sha, obs.fingerprint, IN_PROGRESS, now.isoformat(), obs.target)
    return Decision((APPLY,), started, PENDING, f"rolling out {obs.target or 'new revision'}", now + POLL)


def _follow(record: RolloutRecord | None, obs: Observation, sha: str, now: datetime) -> Decision:
    primary = obs.primary
    base = record or RolloutRecord(sha, obs.fingerprint, SUCCEEDED, now.isoformat(), obs.target)
    name = (primary.task_definition if primary else None) or obs.target or "service"
    if primary is None or primary.rollout_state in (None, "COMPLETED"):
        if len([d for d in obs.deployments if d.status != "INACTIVE"]) > 1:
            return Decision(
                (), replace(base, result=IN_PROGRESS), PENDING, f"{name}: old tasks draining", now + POLL
            )
        desc = f"{name} running" if primary is None else f"{name} running {primary.running}/{primary.desired}"
        return Decision((), replace(base, result=SUCCEEDED), SUCCESS, desc)
    if primary.rollout_state == "FAILED":
        reason = _cut(f"deployment failed: {primary.reason or 'tasks did not become healthy'}")
        return Decision((), replace(base, result=FAILED, reason=reason), FAILURE, reason)
    return Decision(
        (),
        replace(base, result=IN_PROGRESS),
        PENDING,
        f"rolling out {name}: {primary.running}/{primary.desired} tasks running",
        now + POLL,
    )


def _on_target(obs: Observation) -> bool:
    """ECS's PRIMARY deployment runs the revision Git asks for (a registered one, not ``family:(new)``)."""
    primary = obs.primary
    target = obs.target or ""
    return (
        primary is not None
        and bool(target)
        and not target.endswith(":(new)")
        and (primary.task_definition == target)
    )


def residual_warning(fields: tuple[str, ...], limit: int = 2) -> str:
    """The words for fields ECS describes that the manifests do not say."""
    named = ", ".join(fields[:limit]) + (f" +{len(fields) - limit} more" if len(fields) > limit else "")
    return f"ECS returned {named} that the manifest does not say; add it or report a normaliser gap"


def _warn_residual(decision: Decision, fields: tuple[str, ...]) -> Decision:
    if decision.state != SUCCESS or not fields:
        return decision
    return replace(decision, description=_cut(f"{residual_warning(fields)} ({decision.description})"))


def _failure_reason(obs: Observation) -> str:
    """Why ECS gave up: the failed deployment's reason while it is still listed, else the newest
    "deployment failed" event (the failed deployment drains away once the rollback completes)."""
    failed = next((d for d in obs.deployments if d.rollout_state == "FAILED" and d.reason), None)
    if failed is not None:
        return failed.reason
    for message in obs.events:
        if "deployment failed" in message:
            return re.sub(r"^(\([^)]*\)\s*)+", "", message)  # drop "(service x) (deployment y) "
    return "the new tasks did not become healthy"


def _cut(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
