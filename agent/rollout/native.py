"""The ``ecs`` engine: ECS runs BLUE_GREEN / LINEAR / CANARY deployments itself; the agent follows them,
gates production traffic on maintenance and freeze windows, and rolls back fast.

ECS moves the traffic, bakes and runs Lambda hooks. The agent reads the service deployment
(ListServiceDeployments / DescribeServiceDeployments), says where it is on the commit ("canary 10 %
baking, 6 min left"), and acts in three ways:

* **Windows.** A service that lists maintenance windows gets a PAUSE lifecycle hook at
  PRE_PRODUCTION_TRAFFIC_SHIFT (the planner adds it), which ECS reaches before every production traffic
  step. The agent answers ContinueServiceDeployment(CONTINUE) while a maintenance window is open (and no
  freeze is), and otherwise holds it: "waiting for maintenance window weekday-nights, opens 22:00
  Europe/Berlin". Green scales up and takes test traffic outside the window; only production traffic
  waits. When a window closes (or a freeze opens) after traffic has partly moved (0 < green < 100 %), the
  window's ``overrun`` decides: ``finish`` continues, ``pause`` holds at the next step, ``rollback``
  rolls back at once (ContinueServiceDeployment(ROLLBACK) at a paused hook, else
  StopServiceDeployment(ROLLBACK)). A freeze stops new rollouts from starting.
* **Alarms.** The strategy's ``rollbackOn.alarms`` are ECS's deployment alarms, and the agent reads them
  too on every tick while the deployment is in flight: one in ALARM is StopServiceDeployment(ROLLBACK)
  at once, without waiting for ECS's next alarm poll.
* **Supersede.** A new commit while a deployment is in flight stops it with
  StopServiceDeployment(ROLLBACK) (the same rule as the agent engine: never two rollouts at once). When
  the new commit asks for the revision the deployment started from (a revert), that rollback is the
  whole job: success "rolled back to web:4" on the new commit. Otherwise the new content is applied once
  the rollback has finished. Either way the superseded commit gets a failure "superseded by <sha12>
  before it finished".
* **Adopt.** The stored record is only a hint. A deployment moving forward that the record does not
  follow, while ECS's service already is what Git asks for (the agent died after its UpdateService
  reached ECS, or its store was lost), carries this content: the agent follows it to its end (and
  continues it at the PAUSE hook); success only once ECS says SUCCESSFUL.

A worked example: canary 10 % for 5 minutes, bake 10 minutes, a maintenance window, ``web:4`` running,
commit C1 asks for ``web:5`` (fingerprint F1):

====  ==========================================  ===============  ======================================
tick  observation                                 record before    decision
====  ==========================================  ===============  ======================================
1     out of sync, nothing in flight              F0 succeeded     APPLY; F1 in_progress, source web:4
2     in sync; IN_PROGRESS SCALE_UP 2/4           F1 in_progress   pending "web:5 scaling up: 2/4 tasks"
3     PAUSE hook AWAITING_ACTION, window closed   F1               pending "waiting for maintenance
                                                                   window ..., opens 22:00 ..."
4     same, window open                           F1               CONTINUE; pending
5     PRODUCTION_TRAFFIC_SHIFT 10 %               F1, 10 % seen    pending "canary 10 % baking, 5 min
                                                                   left"
6     alarm web-5xx in ALARM                      F1               STOP(ROLLBACK); pending
7     ROLLBACK_SUCCESSFUL; web:4 runs (out of     F1               failure "rolled back: alarm web-5xx
      sync)                                                        in ALARM"; F1 failed, not retried
====  ==========================================  ===============  ======================================

A revert C2 (asking for web:4 again) at tick 6 instead: STOP(ROLLBACK); new record F2 ``revert``; on
ROLLBACK_SUCCESSFUL the service runs web:4, the plan is in sync: success "rolled back to web:4" on C2,
failure "superseded by C2 before it finished" on C1.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from .decisions import APPLY, FAILURE, PENDING, SUCCESS, Decision
from .native_model import (
    BAKE_POLL,
    ECS_IN_FLIGHT,
    FAILED,
    IN_PROGRESS,
    POLL,
    ROLLING_BACK,
    START_GRACE,
    SUCCEEDED,
    ContinueDeployment,
    Deployment,
    Hook,
    NativeRecord,
    Observation,
    StopDeployment,
    Strategy,
)
from .windows import Gate, Window

__all__ = [
    "BAKE_POLL", "ECS_IN_FLIGHT", "FAILED", "IN_PROGRESS", "POLL", "ROLLING_BACK", "START_GRACE", "SUCCEEDED",
    "ContinueDeployment", "Deployment", "Hook", "NativeRecord", "Observation", "StopDeployment", "Strategy",
    "advance",
]  # fmt: skip

# --------------------------------------------------------------------------------------------------
# The engine


def advance(record: NativeRecord | None, obs: Observation, strategy: Strategy, now: datetime) -> Decision:
    """Decide the next step for one ecs-engine service (see the module docstring)."""
    mine = record is not None and record.fingerprint == obs.fingerprint
    deployment = obs.deployment
    if deployment is not None and deployment.in_flight:
        if mine and record is not None and record.applied and record.deployment in (None, deployment.arn):
            return _follow(record, obs, strategy, now)
        forward = deployment.status not in (*ROLLING_BACK, "STOP_REQUESTED")
        if (
            obs.in_sync
            and forward
            and not (mine and record is not None and record.deployment == deployment.arn)
        ):
            return _adopt(record if mine else None, record, obs, strategy, now)
        return _supersede(record if mine else None, record, obs, now)
    if mine and record is not None and record.result == IN_PROGRESS and record.applied:
        return _finished(record, obs, strategy, now)
    if mine and record is not None and record.result == FAILED:
        return Decision((), record, FAILURE, record.reason or "rollout failed; fix or revert the commit")
    # Another commit's rollout the record says is in progress, with no deployment of it in flight any more
    # (its stop reached ECS, and the answer or the agent was lost): it is superseded by this commit.
    others: tuple[tuple[str, str, str], ...] = ()
    if not mine and record is not None and record.result == IN_PROGRESS and record.sha != obs.sha:
        others = ((record.sha, FAILURE, _cut(f"superseded by {obs.sha[:12]} before it finished")),)
    if obs.in_sync:
        base = record if mine and record is not None else _new(obs, now)
        if base.revert or (others and record is not None and record.source == obs.current):
            done = replace(base, result=SUCCEEDED, revert=True)
            return Decision((), done, SUCCESS, _cut(f"rolled back to {obs.current}"), None, others)
        return Decision((), replace(base, result=SUCCEEDED), SUCCESS, _running(obs, strategy), None, others)
    base = record if mine and record is not None else _new(obs, now)
    if obs.gate.frozen_by is not None:
        return Decision((), base, PENDING, _cut(obs.gate.frozen_text()), obs.gate.frozen_until, others)
    started = replace(
        base,
        result=IN_PROGRESS,
        started_at=now.isoformat(),
        applied=True,
        source=obs.current,
        deployment=None,
        task_definition=obs.target,
        reason="",
    )
    if obs.target is not None and obs.target == obs.current:  # the service changes, not its revision
        desc = f"updating {obs.target} ({strategy.kind})"
    else:
        desc = f"rolling out {obs.target or 'new revision'} ({strategy.kind})"
    return Decision((APPLY,), started, PENDING, _cut(desc), now + POLL, others)


def _new(obs: Observation, now: datetime) -> NativeRecord:
    return NativeRecord(
        obs.sha, obs.fingerprint, IN_PROGRESS, now.isoformat(), obs.target, source=obs.current
    )


def _follow(record: NativeRecord, obs: Observation, strategy: Strategy, now: datetime) -> Decision:
    """Our own deployment is in flight."""
    d = obs.deployment
    assert d is not None
    record = _track(replace(record, deployment=d.arn), d, now)
    label = (obs.target if obs.in_sync else None) or record.task_definition or "new revision"
    if obs.in_sync and obs.target and record.task_definition != obs.target:
        record = replace(record, task_definition=obs.target)
    if d.status in ROLLING_BACK or d.status == "STOP_REQUESTED":
        reason = record.reason or _ecs_reason(d)
        return Decision((), record, PENDING, _cut(f"rolling back {label}: {reason}"), now + POLL)

    firing = [a for a in strategy.alarms if obs.alarms.get(a) == "ALARM"]
    if firing:
        reason = f"alarm {firing[0]} in ALARM"
        return Decision(
            (StopDeployment(d.arn, reason),),
            replace(record, reason=reason),
            PENDING,
            _cut(f"rolling back {label}: {reason}"),
            now + POLL,
        )

    gate, paused = obs.gate, d.paused_hook
    window = _overrun_window(gate, d)
    if window is not None and window.overrun == "rollback":
        reason = _closed_text(window)
        action: Any = (
            ContinueDeployment(d.arn, paused.id, "ROLLBACK") if paused else StopDeployment(d.arn, reason)
        )
        return Decision(
            (action,),
            replace(record, reason=reason),
            PENDING,
            _cut(f"rolling back {label}: {reason}"),
            now + POLL,
        )
    if paused is not None:
        if gate.traffic_may_move or (window is not None and window.overrun == "finish"):
            why = (
                f"window {gate.open_maintenance.name} open"
                if gate.open_maintenance
                else "no window to wait for"
            )
            if window is not None and not gate.traffic_may_move:
                why = f"{_closed_text(window)}, overrun finish"
            desc = f"{label}: moving production traffic ({why})"
            return Decision((ContinueDeployment(d.arn, paused.id),), record, PENDING, _cut(desc), now + POLL)
        wake = gate.next_change() or now + BAKE_POLL
        if gate.frozen_by is not None:
            desc = gate.frozen_text()
        elif window is not None:  # overrun pause, traffic partly moved
            desc = f"paused at {d.weight:g} %: {_closed_text(window)}; {gate.waiting_text()}"
        else:
            desc = gate.waiting_text()
        return Decision((), record, PENDING, _cut(desc), wake)
    desc, wake = _progress(record, d, strategy, label, now)
    return Decision((), record, PENDING, _cut(desc), wake)


def _adopt(
    mine: NativeRecord | None,
    previous: NativeRecord | None,
    obs: Observation,
    strategy: Strategy,
    now: datetime,
) -> Decision:
    """A deployment the record does not follow is in flight while ECS's service already is what Git asks
    for: it carries this content (the agent applied it and lost the record, a crash or a deleted store,
    or someone applied the same): follow it to its end, never report success before ECS does."""
    d = obs.deployment
    assert d is not None
    base = mine or _new(obs, now)
    others = _superseded(mine, previous, obs)
    adopted = replace(
        base,
        result=IN_PROGRESS,
        started_at=now.isoformat(),
        applied=True,
        deployment=d.arn,
        source=obs.source or base.source,
        task_definition=obs.target or base.task_definition,
        revert=False,
        reason="",
    )
    return replace(_follow(adopted, obs, strategy, now), other_commits=others)


def _superseded(
    mine: NativeRecord | None, previous: NativeRecord | None, obs: Observation
) -> tuple[tuple[str, str, str], ...]:
    """The failure status for the commit whose rollout was still in progress when this one arrived, if
    any (it was superseded before it finished); empty otherwise."""
    if (
        previous is None
        or previous is mine
        or previous.result != IN_PROGRESS
        or previous.sha == obs.sha
    ):
        return ()
    return ((previous.sha, FAILURE, f"superseded by {obs.sha[:12]} before it finished"),)


def _supersede(
    mine: NativeRecord | None, previous: NativeRecord | None, obs: Observation, now: datetime
) -> Decision:
    """A deployment that is not this content's is in flight: roll it back first (never two at once)."""
    d = obs.deployment
    assert d is not None
    base = mine or _new(obs, now)
    revert = (
        previous is not None
        and previous.fingerprint != obs.fingerprint
        and previous.source is not None
        and obs.target == previous.source
    ) or base.revert
    others = _superseded(mine, previous, obs)
    if others and previous is not None:
        base = replace(base, superseded=previous.sha, source=previous.source)
    base = replace(base, result=IN_PROGRESS, deployment=d.arn, applied=False, revert=revert)
    going = (
        f"rolling back to {obs.target}"
        if revert
        else f"rolling back the deployment in flight for {obs.target}"
    )
    if d.status in ROLLING_BACK or d.status == "STOP_REQUESTED":
        return Decision((), base, PENDING, _cut(going), now + POLL, others)
    if d.stage == "CLEAN_UP":  # past the point of no return: let it finish, then roll out
        desc = f"waiting for the deployment in flight to finish before {obs.target}"
        return Decision((), replace(base, deployment=None), PENDING, _cut(desc), now + POLL, others)
    reason = f"superseded by {obs.sha[:12]}"
    return Decision((StopDeployment(d.arn, reason),), base, PENDING, _cut(going), now + POLL, others)


def _finished(record: NativeRecord, obs: Observation, strategy: Strategy, now: datetime) -> Decision:
    """Our deployment is no longer in flight (or never appeared)."""
    d = obs.deployment
    label = (obs.target if obs.in_sync else None) or record.task_definition or "new revision"
    if d is None or (record.deployment is not None and d.arn != record.deployment):
        if obs.in_sync:  # the change started no deployment (desiredCount, tags...)
            return Decision((), replace(record, result=SUCCEEDED), SUCCESS, _running(obs, strategy))
        if now - datetime.fromisoformat(record.started_at) < START_GRACE:
            return Decision((), record, PENDING, _cut(f"rolling out {label}: waiting for ECS"), now + POLL)
        reason = f"ECS started no deployment of {label}"
        return Decision((), replace(record, result=FAILED, reason=reason), FAILURE, reason)
    if d.status == "SUCCESSFUL":
        if obs.in_sync:
            done = replace(record, result=SUCCEEDED, task_definition=label)
            return Decision((), done, SUCCESS, _running(obs, strategy))
        reason = f"{label} deployed, but the service still differs from Git"
        return Decision((), replace(record, result=FAILED, reason=reason), FAILURE, _cut(reason))
    why = record.reason or _ecs_reason(d)
    if d.status == "STOPPED":
        reason = _cut(f"stopped: {why}")
    else:
        reason = _cut(
            f"rolled back: {why}" if d.status == "ROLLBACK_SUCCESSFUL" else f"rollback failed: {why}"
        )
    return Decision((), replace(record, result=FAILED, reason=reason), FAILURE, reason)


# --------------------------------------------------------------------------------------------------
# Helpers


def _running(obs: Observation, strategy: Strategy) -> str:
    """``api:2 running 3/3 (canary)``: the steady text, the same on every tick after the rollout."""
    counts = f" {obs.tasks[0]}/{obs.tasks[1]}" if obs.tasks is not None else ""
    return _cut(f"{obs.current or obs.target or 'service'} running{counts} ({strategy.kind})")


def _track(record: NativeRecord, d: Deployment, now: datetime) -> NativeRecord:
    """Remember when the current stage and traffic weight were first seen (for "6 min left")."""
    if record.stage != d.stage:
        record = replace(record, stage=d.stage, stage_since=now.isoformat())
    if record.step_weight != d.weight:
        record = replace(record, step_weight=d.weight, step_since=now.isoformat())
    return record


def _overrun_window(gate: Gate, d: Deployment) -> Window | None:
    """The window whose ``overrun`` applies: traffic has partly moved and a freeze is open or every
    maintenance window is closed."""
    if not 0 < d.weight < 100:
        return None
    if gate.frozen_by is not None:
        return gate.frozen_by
    if not gate.traffic_may_move:
        return gate.last_closed or gate.waiting_for
    return None


def _closed_text(window: Window) -> str:
    if window.type == "freeze":
        return f"freeze window {window.name} opened mid-rollout"
    return f"maintenance window {window.name} closed mid-rollout"


def _progress(
    record: NativeRecord, d: Deployment, strategy: Strategy, label: str, now: datetime
) -> tuple[str, datetime]:
    waiting = [h for h in d.hooks if h.status == "IN_PROGRESS"]
    if waiting:
        return f"{label}: lifecycle hook running ({(d.stage or '').lower().replace('_', ' ')})", now + POLL
    stage = d.stage or "PRE_SCALE_UP"
    if stage in ("PRE_SCALE_UP", "SCALE_UP") or (d.requested and d.running < d.requested and d.weight == 0):
        return f"{label} scaling up: {d.running}/{d.requested} tasks", now + POLL
    if stage == "BAKE_TIME":
        end = _since(record.stage_since, now) + strategy.bake
        return f"{label} at 100 %, final bake, {_left(end - now)} left", min(end, now + BAKE_POLL)
    if stage == "CLEAN_UP":
        return f"{label} at 100 %, removing {record.source or 'the previous revision'}", now + POLL
    if 0 < d.weight < 100:
        end = _since(record.step_since, now) + strategy.step_bake
        text = f"{strategy.kind} {d.weight:g} % baking, {_left(end - now)} left"
        return text, min(max(end, now + POLL), now + BAKE_POLL)
    if d.weight >= 100:
        return f"{label} at 100 %", now + POLL
    if d.test_weight > 0:
        return f"{label} taking test traffic", now + POLL
    return f"{label} starting ({stage.lower().replace('_', ' ')})", now + POLL


def _ecs_reason(d: Deployment) -> str:
    if d.triggered_alarms:
        return f"alarm {', '.join(d.triggered_alarms)} in ALARM"
    reason = d.reason.strip().rstrip(".")
    for prefix in ("Service deployment rolled back because of ", "Service deployment rolled back because "):
        if reason.startswith(prefix):
            return reason[len(prefix) :]
    return reason or "ECS rolled the deployment back"


def _since(iso: str | None, now: datetime) -> datetime:
    return datetime.fromisoformat(iso) if iso else now


def _left(delta: timedelta) -> str:
    seconds = max(0, math.ceil(delta.total_seconds()))
    if seconds >= 90:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds} s"


def _cut(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
