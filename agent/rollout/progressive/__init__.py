"""The agent engine: task sets on the EXTERNAL deployment controller, traffic moved by listener weights.

One task set per revision (``externalId`` = commit sha), each registered to one of the service's two
target groups. Blue is the PRIMARY task set and its target group; green is the target revision's task
set on the other group. The production listener rule forwards to both with weights summing to 100;
a test listener rule, when configured, sends 100 % to green before production traffic moves.

The phase is derived from what AWS shows on every tick (which task sets exist and are stable, the
rule weights, which task set is primary); the record keeps only what cannot be observed (when the
current step's bake started, the result, the reason). A worked example: canary 10 % for 5m, final
bake 10m, alarm ``web-5xx``, a ``postTestTraffic`` hook, a test rule; web:4 (blue, tg-a) serves, the
commit asks for web:5 (F2):

====  ========================================  ==================================  ========================
tick  observation                               actions                             status (pending unless
                                                                                    said)
====  ========================================  ==================================  ========================
1     web:5 not registered                      Register                            registering web:5
2     target known, no green                    CreateTaskSet(web:5, tg-b, sha)     creating web:5 task set
3     green 2/4 running                         --                                  waiting for web:5 task
                                                                                    set: 2/4 running
4     green stable, test rule on tg-a           SetWeights(test, tg-b 100)          test traffic to web:5
5     test rule on tg-b, no hook answer yet     RunHook(postTestTraffic)            hook postTestTraffic
                                                                                    running for web:5
6     hook SUCCEEDED, production tg-a 100       SetWeights(prod, tg-a 90, tg-b 10)  canary 10 %: shifting
                                                                                    traffic to web:5
7     production 90/10, 1m after the move       --  (alarms checked)                canary 10 % baking, 4m
                                                                                    left
8     5m after the move                         SetWeights(prod, tg-a 0, tg-b 100)  canary 100 %: shifting
                                                                                    traffic to web:5
9     production 0/100, blue still primary      SetPrimary(green)                   web:5 serving 100 %, now
                                                                                    primary
10    green primary, blue kept, 3m later        --  (alarms checked)                web:5 serving 100 %,
                                                                                    final bake 7m left
11    10m after the flip                        DeleteTaskSet(blue)                 success "web:5 serving
                                                                                    100 %"
====  ========================================  ==================================  ========================

Alarm ``web-5xx`` in ALARM at tick 7 instead: ONE decision ``SetWeights(prod, tg-a 100, tg-b 0)``,
``SetWeights(test, tg-a 100, tg-b 0)``, ``DeleteTaskSet(green)``, failure "rolled back: alarm web-5xx
in ALARM"; the same fingerprint is not tried again. At tick 10 the rollback also makes blue primary
again (``SetPrimary(blue)`` before ``DeleteTaskSet(green)``).

Windows (:mod:`agent.rollout.windows`): a closed maintenance window holds every production weight
change towards green ("web:5 ready: waiting for maintenance window weekday-nights, opens 22:00
Europe/Berlin"); an open freeze window holds everything that has not moved traffic yet ("frozen by
year-end-freeze until 2027-01-03 00:00 UTC"), with no action at all. A rollout whose traffic has
partly moved (0 < green < 100) when a maintenance window closes or a freeze opens follows that
window's ``overrun``: ``finish`` carries on, ``pause`` holds the weights until the gate opens
(alarms still checked), ``rollback`` rolls back ("maintenance window X closed mid-rollout").
Rollbacks and aborts are never held by a window: they put traffic back where it was.

Supersede: a commit with other content while a rollout is in flight aborts it (traffic back on blue,
the old green deleted, one decision); the superseded commit gets failure "superseded by <sha12>
before it finished" (``Decision.other_commits``) and the new content rolls out from blue once the
old green has drained, so there are never three task sets. When the new content IS blue's revision
(a revert) the abort is the whole rollback: success "rolled back to web:4". When the new commit keeps
the same task definition (only service settings changed) the task set in flight carries on. When the
new commit moves the service to another engine, :func:`hand_back` does the same abort and no more (the
reconciler then switches the deployment controller).

Crash safety: a green task set that exists is never created again; weights already moved mean the
step is done (its bake starts when first seen without a record); a task set that is neither blue nor
the target is deleted (its weight set to 0 first). No weight ever goes to a target group whose task
set is not stable; a green that loses stability while it has traffic rolls back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from agent.rollout.decisions import Decision

from .actions import (
    Action,
    CreateTaskSet,
    DeleteTaskSet,
    Register,
    RunHook,
    SetPrimary,
    SetWeights,
    UpdateService,
)
from .model import (
    DEFAULT_HOOK_TIMEOUT,
    FAILED,
    IN_PROGRESS,
    POLL,
    STABILIZE_TIMEOUT,
    STAGES,
    SUCCEEDED,
    AgentObservation,
    AgentRecord,
    Hook,
    HookState,
    Strategy,
    TaskSetView,
    Traffic,
    Weights,
    Wiring,
)
from .phases import Rollout

__all__ = [
    "DEFAULT_HOOK_TIMEOUT",
    "FAILED",
    "IN_PROGRESS",
    "POLL",
    "STABILIZE_TIMEOUT",
    "STAGES",
    "SUCCEEDED",
    "Action",
    "AgentObservation",
    "AgentRecord",
    "CreateTaskSet",
    "DeleteTaskSet",
    "Hook",
    "HookState",
    "Register",
    "RunHook",
    "SetPrimary",
    "SetWeights",
    "Strategy",
    "TaskSetView",
    "Traffic",
    "UpdateService",
    "Weights",
    "Wiring",
    "advance",
    "hand_back",
]


def advance(record: AgentRecord | None, obs: AgentObservation, strategy: Strategy, now: datetime) -> Decision:
    """Decide the next step of an agent-engine rollout (worked examples in the module docstring).

    Everything that can be observed is derived from ``obs`` on every tick: which task set is blue (the
    PRIMARY one), whether green (the target's task set) exists and is stable, how far traffic has moved
    (the production rule's weights), whether green is already primary. ``record`` only adds what
    cannot be observed: when the current step's bake started, the result, the failure reason.
    """
    return Rollout(record, obs, strategy, now).decide()


def hand_back(record: AgentRecord | None, obs: AgentObservation, to: str, now: datetime) -> Decision:
    """Wind the agent engine down before its service leaves the EXTERNAL controller for the ECS strategy
    ``to`` (``ROLLING``, ``CANARY``, ...): Git now asks for another engine, and ECS changes the deployment
    controller only of a service with exactly one task set, PRIMARY.

    Like an abort, and never held by a window: production and test traffic go to the task set kept, it
    becomes primary if it is not yet, and every other task set is deleted, in one decision. The task set
    kept is the rollout's blue when it still runs (a rollout in flight is undone, as a newer commit would
    undo it), else the primary. A rollout in flight fails on its commit: "superseded by <sha12> before it
    finished". ``obs`` needs ``task_sets``, ``traffic``, ``wiring`` and ``sha``; the reconciler plans the
    switch itself (UpdateService of ``deploymentController``) once only the primary task set is left.

    Example: web:4 (tg-a) primary, web:5 green at 10 % on tg-b, a commit switches web to engine ecs
    canary: ``SetWeights(prod, tg-a 100, tg-b 0)``, ``DeleteTaskSet(web:5)``, pending "switching from
    engine agent to CANARY: traffic back on web:4, removing web:5"; the next tick sees one task set.
    """
    tick = Rollout(record, obs, Strategy("blueGreen", (100,)), now)
    kept = record
    if tick.prev_in_flight is not None:
        reason = tick.superseded[0][2] if tick.superseded else f"stopped: switching to {to}"
        kept = replace(tick.prev_in_flight, result=FAILED, reason=reason)
    return tick.hand_back(to, kept)
