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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

from agent.plan.services import duration_seconds

from .decisions import FAILURE, PENDING, SUCCESS, Decision
from .windows import Gate

POLL = timedelta(seconds=5)
IN_PROGRESS, SUCCEEDED, FAILED = "in_progress", "succeeded", "failed"
STAGES = (
    "preScaleUp",
    "postScaleUp",
    "testTraffic",
    "postTestTraffic",
    "preProductionTraffic",
    "postProductionTraffic",
)
DEFAULT_HOOK_TIMEOUT = timedelta(minutes=5)

Weights = tuple[tuple[str, int], ...]


# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Hook:
    """One lifecycle hook: an HTTP URL or a Lambda ARN, called at ``stage``."""

    stage: str
    url: str | None
    lambda_arn: str | None
    timeout: timedelta = DEFAULT_HOOK_TIMEOUT
    on_timeout: str = "rollback"  # "rollback" | "continue"

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Hook:
        timeout = spec.get("timeout")
        return cls(
            stage=str(spec["stage"]),
            url=spec.get("url"),
            lambda_arn=spec.get("lambda"),
            timeout=timedelta(seconds=duration_seconds(timeout)) if timeout else DEFAULT_HOOK_TIMEOUT,
            on_timeout=str(spec.get("onTimeout", "rollback")),
        )


@dataclass(frozen=True)
class Strategy:
    """A DeploymentStrategy as the agent engine runs it.

    ``steps`` are the green production weights in order: canary 10 -> (10, 100); linear 25 ->
    (25, 50, 75, 100); linear 30 -> (30, 60, 90, 100); blueGreen -> (100,). ``step_bakes[i]`` is the
    bake after ``steps[i]`` for every step but the last (canary ``bake`` / linear ``stepBake``);
    ``bake`` is the final bake once green is primary.
    """

    type: str  # "blueGreen" | "linear" | "canary"
    steps: tuple[int, ...]
    step_bakes: tuple[timedelta, ...] = ()
    bake: timedelta = timedelta(0)
    alarms: tuple[str, ...] = ()  # alarm NAMES
    hooks: tuple[Hook, ...] = ()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Strategy:
        """Build from a DeploymentStrategy ``spec``: durations like ``"5m"``, alarms as names, ARNs or
        ``{name: ...}``."""
        kind = str(spec.get("type", "blueGreen"))
        steps: tuple[int, ...]
        step_bakes: tuple[timedelta, ...] = ()
        if kind == "canary":
            block = spec.get("canary") or {}
            percent = _percent(block.get("percent", 10))
            steps = (percent, 100) if percent < 100 else (100,)
            step_bakes = (_duration(block.get("bake")),) if percent < 100 else ()
        elif kind == "linear":
            block = spec.get("linear") or {}
            step = _percent(block.get("stepPercent", 10))
            steps = (*range(step, 100, step), 100)
            step_bakes = (_duration(block.get("stepBake")),) * (len(steps) - 1)
        elif kind == "blueGreen":
            steps = (100,)
        else:
            raise ValueError(f"the agent engine runs blueGreen, linear or canary, not {kind!r}")
        alarms = tuple(_alarm_name(a) for a in ((spec.get("rollbackOn") or {}).get("alarms") or ()))
        hooks = tuple(Hook.from_spec(h) for h in spec.get("hooks") or ())
        return cls(kind, steps, step_bakes, _duration(spec.get("bake")), alarms, hooks)

    def hook(self, stage: str) -> Hook | None:
        return next((h for h in self.hooks if h.stage == stage), None)


@dataclass(frozen=True)
class Wiring:
    """Where the service's traffic flows: its two target groups and the listener rules between them."""

    target_groups: tuple[str, str]  # (targetGroup ARN, alternateTargetGroup ARN)
    production_rule: str  # listener rule ARN
    test_rule: str | None = None
    container_name: str | None = None
    container_port: int | None = None


@dataclass(frozen=True)
class TaskSetView:
    """The parts of a DescribeTaskSets task set the engine reads."""

    id: str
    arn: str
    task_definition: str  # ARN
    external_id: str
    status: str  # "PRIMARY" | "ACTIVE" | "DRAINING"
    target_group: str | None
    scale: float  # percent
    running: int
    desired: int  # computedDesiredCount
    stable: bool  # stabilityStatus STEADY_STATE and running >= desired


@dataclass(frozen=True)
class HookState:
    """What one lifecycle hook answered for this rollout (the reconciler stores it per fingerprint, stage)."""

    stage: str
    status: str  # "SUCCEEDED" | "FAILED" | "IN_PROGRESS"
    first_called_at: datetime
    last_called_at: datetime
    reason: str = ""


@dataclass(frozen=True)
class Traffic:
    """Forward weights observed on the listener rules (target-group ARN -> weight)."""

    production: Mapping[str, int]
    test: Mapping[str, int] | None = None  # None when the service has no test rule


@dataclass(frozen=True)
class AgentObservation:
    """One agent-engine service as Git and AWS show it on this tick."""

    sha: str
    fingerprint: str
    target: str | None  # task-definition ARN Git asks for; None = not registered yet
    target_label: str  # "web:5" or "web:(new)"
    wiring: Wiring
    task_sets: tuple[TaskSetView, ...]
    traffic: Traffic
    alarms: Mapping[str, str] = field(default_factory=dict)  # alarm name -> ALARM | OK | INSUFFICIENT_DATA
    hooks: Mapping[str, HookState] = field(default_factory=dict)  # results for THIS rollout, by stage
    gate: Gate | None = None  # None = no windows at all
    service_in_sync: bool = True  # non-task-set service fields need no UpdateService


# -------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Register:
    """Register the target task definition (the plan's REGISTER change)."""


@dataclass(frozen=True)
class UpdateService:
    """Apply the plan's non-task-set service change (desiredCount, tags, ...)."""


@dataclass(frozen=True)
class CreateTaskSet:
    """Create a task set at scale 100 % for ``task_definition`` (ARN) registered to ``target_group``."""

    task_definition: str
    target_group: str
    external_id: str


@dataclass(frozen=True)
class SetWeights:
    """Set a listener rule's forward action to these (target group ARN, weight) pairs; they sum to 100."""

    rule: str
    weights: Weights


@dataclass(frozen=True)
class SetPrimary:
    """Make this task set (ARN) the service's primary task set."""

    task_set: str


@dataclass(frozen=True)
class DeleteTaskSet:
    """Delete this task set (ARN)."""

    task_set: str


@dataclass(frozen=True)
class RunHook:
    """Call the hook configured for ``stage``; the reconciler stores the answer as a HookState."""

    stage: str
    weights: Weights


Action = Register | UpdateService | CreateTaskSet | SetWeights | SetPrimary | DeleteTaskSet | RunHook


# --------------------------------------------------------------------------------------------- record


@dataclass(frozen=True)
class AgentRecord:
    """What the agent engine remembers about one rollout: only what cannot be observed.

    Stored under the same key as :class:`~agent.rollout.decisions.RolloutRecord`; ``from_json`` accepts a
    RolloutRecord's JSON (no ``engine`` key) as a finished rollout and ignores keys it does not know.
    """

    sha: str
    fingerprint: str
    result: str  # "in_progress" | "succeeded" | "failed"
    started_at: str  # ISO-8601
    task_definition: str | None = None  # target task-definition ARN
    reason: str = ""
    engine: str = "agent"
    step_since: str | None = None  # ISO: when the current production weight (or the primary flip) was reached
    step_weight: int | None = None  # green production weight step_since refers to (0 = none yet)
    step_phase: str | None = None  # "step" while baking a traffic step, "final" during the final bake
    blue: str | None = None  # task-definition ARN of blue when the rollout started (an abort goes back there)
    green_since: str | None = None  # ISO: when the green task set was created (stabilisation timeout)
    outcome: str = ""  # the success text to keep repeating (e.g. "rolled back to web:4")

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> AgentRecord | None:
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "engine" not in data and values.get("result") == IN_PROGRESS:
            values["result"] = SUCCEEDED  # a rolling record: its rollout is over as far as this engine knows
        values.setdefault("engine", "agent")
        for key in ("sha", "fingerprint", "result", "started_at"):
            values.setdefault(key, "")
        return cls(**values)


# ----------------------------------------------------------------------------------------------- engine


def advance(record: AgentRecord | None, obs: AgentObservation, strategy: Strategy, now: datetime) -> Decision:
    """Decide the next step of an agent-engine rollout (worked examples in the module docstring).

    Everything that can be observed is derived from ``obs`` on every tick: which task set is blue (the
    PRIMARY one), whether green (the target's task set) exists and is stable, how far traffic has moved
    (the production rule's weights), whether green is already primary. ``record`` only adds what
    cannot be observed: when the current step's bake started, the result, the failure reason.
    """
    return _Tick(record, obs, strategy, now).decide()


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
    tick = _Tick(record, obs, Strategy("blueGreen", (100,)), now)
    kept = record
    if tick.prev_in_flight is not None:
        reason = tick.superseded[0][2] if tick.superseded else f"stopped: switching to {to}"
        kept = replace(tick.prev_in_flight, result=FAILED, reason=reason)
    return tick.hand_back(to, kept)


class _Tick:
    """One call of :func:`advance`: the observation, read once, and the decisions built from it."""

    def __init__(self, record: AgentRecord | None, obs: AgentObservation, strategy: Strategy, now: datetime):
        self.obs, self.strategy, self.now = obs, strategy, now
        self.gate = obs.gate if obs.gate is not None else _OPEN
        self.primary = next((t for t in obs.task_sets if t.status == "PRIMARY"), None)
        mine = record if record is not None and record.fingerprint == obs.fingerprint else None
        prev = record if record is not None and mine is None else None
        self.prev_in_flight = prev if prev is not None and prev.result == IN_PROGRESS else None
        self.superseded: tuple[tuple[str, str, str], ...] = ()
        if self.prev_in_flight is not None:
            if prev is not None and prev.sha != obs.sha:
                text = _cut(f"superseded by {obs.sha[:12]} before it finished")
                self.superseded = ((prev.sha, FAILURE, text),)
            if obs.target is not None and self.prev_in_flight.task_definition == obs.target:
                # Same revision, other service settings: the task set in flight is this commit's green.
                mine = replace(self.prev_in_flight, sha=obs.sha, fingerprint=obs.fingerprint)
        if mine is not None and obs.target is not None and mine.task_definition != obs.target:
            mine = replace(mine, task_definition=obs.target)  # registered since the record was written
        self.no_record = record is None
        self.mine = mine
        self.record = mine or AgentRecord(
            obs.sha,
            obs.fingerprint,
            IN_PROGRESS,
            self._start_time().isoformat(),
            obs.target,
            blue=self.primary.task_definition if self.primary else None,
        )
        self.label = obs.target_label

    # -- the phases, in the order a rollout meets them ---------------------------------------------------

    def decide(self) -> Decision:
        obs, primary = self.obs, self.primary
        if primary is None:
            return self._bootstrap()
        if self.mine is not None and self.mine.result == FAILED:
            return self._failed(self.mine)
        prev = self.prev_in_flight
        if (
            prev is not None
            and prev.task_definition is not None
            and primary.task_definition == prev.task_definition != obs.target
        ):
            old = self._live_other(prefer=prev.blue)
            if old is not None:  # the superseded rollout had already made its green primary
                return self._abort_flipped(old)
        if obs.target is not None and primary.task_definition == obs.target:
            return self._serving(primary)
        return self._rolling_out(primary)

    def _rolling_out(self, blue: TaskSetView) -> Decision:
        """Blue is primary and is not the target: take the target from 0 % to primary."""
        obs, gate = self.obs, self.gate
        tgs = obs.wiring.target_groups
        if blue.target_group not in tgs:
            text = f"primary task set {_label(blue)} is not registered to targetGroup or alternateTargetGroup"
            return Decision((), self.mine, FAILURE, _cut(text))
        blue_tg = blue.target_group
        green_tg = tgs[1] if blue_tg == tgs[0] else tgs[0]
        green = next(
            (
                t
                for t in obs.task_sets
                if t is not blue
                and t.status != "DRAINING"
                and obs.target is not None
                and t.task_definition == obs.target
                and t.target_group == green_tg
            ),
            None,
        )
        strays = [t for t in obs.task_sets if t is not blue and t is not green]
        live_strays = [t for t in strays if t.status != "DRAINING"]
        w = int(obs.traffic.production.get(green_tg, 0))
        test_w = int((obs.traffic.test or {}).get(green_tg, 0))
        flow = _Flow(blue, green, blue_tg, green_tg)

        # 0. Safety first: superseded task sets go (traffic back on blue first); no traffic on an
        #    unstable or missing green.
        if live_strays:
            return self._abort(flow, live_strays, w, test_w)
        if green is None and (w > 0 or test_w > 0):
            actions = self._back_to_blue(flow, w, test_w)
            return self._pending(actions, f"traffic back on {_label(blue)}: no {self.label} task set", POLL)
        if green is not None and not green.stable and (w > 0 or test_w > 0):
            return self._rollback(
                flow, f"{self.label} task set unstable with traffic: {_counts(green)}", w, test_w
            )

        # 1. Freeze: nothing starts; a rollout caught half-way follows the window's overrun.
        if gate.frozen_by is not None:
            if 0 < w < 100:
                overrun = gate.frozen_by.overrun
                if overrun == "rollback":
                    return self._rollback(
                        flow, f"freeze window {gate.frozen_by.name} opened mid-rollout", w, test_w
                    )
                if overrun == "pause":
                    alarm = self._alarm()
                    if alarm:
                        return self._rollback(flow, alarm, w, test_w)
                    return self._pending((), f"{self._phase(w)}: {gate.frozen_text()}", gate.frozen_until)
            elif w == 0:
                return self._pending((), gate.frozen_text(), gate.frozen_until, forward=False)

        # 2. Register the target (and apply the service's other settings).
        if obs.target is None:
            return self._pending((Register(),), f"registering {self.label}", POLL)
        if strays:  # draining: never a third task set
            return self._pending((), f"waiting for {_labels(strays)} task set to drain", POLL)

        # 3. Create green.
        if green is None:
            hooked = self._hook("preScaleUp", flow, w, test_w)
            if hooked is not None:
                return hooked
            create = CreateTaskSet(obs.target, green_tg, obs.sha)
            record = replace(self.record, green_since=self.now.isoformat(), step_weight=0, step_since=None)
            return self._pending((create,), f"creating {self.label} task set", POLL, record=record)

        # 4. Wait for green to be stable (it has no traffic yet).
        if not green.stable:
            since = _parse(self.record.green_since) or self.now
            if self.now - since >= STABILIZE_TIMEOUT:
                reason = (
                    f"{self.label} task set not stable after {_span(STABILIZE_TIMEOUT)}: {_counts(green)}"
                )
                return self._rollback(flow, reason, w, test_w)
            record = (
                self.record
                if self.record.green_since
                else replace(self.record, green_since=since.isoformat())
            )
            return self._pending(
                (), f"waiting for {self.label} task set: {_counts(green)}", POLL, record=record
            )

        if w == 0:
            return self._before_production(flow, test_w)
        if w < 100:
            return self._stepping(flow, w, test_w)
        return self._flip(flow, w, test_w)

    def _before_production(self, flow: _Flow, test_w: int) -> Decision:
        """Green is stable with no production traffic: scale-up and test-traffic hooks, then step 1."""
        obs = self.obs
        if (self.record.step_weight or 0) > 0:  # green has had traffic (a rollback may have been cut short)
            alarm = self._alarm()
            if alarm:
                return self._rollback(flow, alarm, 0, test_w)
        hooked = self._hook("postScaleUp", flow, 0, test_w)
        if hooked is not None:
            return hooked
        if obs.wiring.test_rule is not None:
            if test_w != 100:
                move = SetWeights(obs.wiring.test_rule, ((flow.blue_tg, 0), (flow.green_tg, 100)))
                return self._pending((move,), f"test traffic to {self.label}", POLL)
            for stage in ("testTraffic", "postTestTraffic"):
                hooked = self._hook(stage, flow, 0, test_w)
                if hooked is not None:
                    return hooked
        # Wait for the window before the pre-traffic hook, so that check runs just before traffic moves.
        if not self.gate.traffic_may_move:
            return self._pending((), f"{self.label} ready: {self.gate.waiting_text()}", self.gate.opens_at)
        hooked = self._hook("preProductionTraffic", flow, 0, test_w)
        if hooked is not None:
            return hooked
        return self._move(flow, self.strategy.steps[0])

    def _stepping(self, flow: _Flow, w: int, test_w: int) -> Decision:
        """0 < green weight < 100: bake the current step (alarms checked), then the next step."""
        gate, strategy, record = self.gate, self.strategy, self.record
        alarm = self._alarm()
        if alarm:
            return self._rollback(flow, alarm, w, test_w)
        overrun = "finish"
        if gate.frozen_by is None and not gate.traffic_may_move:  # a maintenance window closed mid-rollout
            overrun = gate.last_closed.overrun if gate.last_closed is not None else "pause"
            if overrun == "rollback":
                name = gate.last_closed.name if gate.last_closed is not None else "?"
                return self._rollback(flow, f"maintenance window {name} closed mid-rollout", w, test_w)
        index = max((i for i, s in enumerate(strategy.steps) if s <= w), default=-1)
        bake = strategy.step_bakes[index] if 0 <= index < len(strategy.step_bakes) else timedelta(0)
        since = _parse(record.step_since) if record.step_weight == w and record.step_phase == "step" else None
        if since is None:  # weights already moved (by us before a crash, or by hand): bake from now
            record = replace(record, step_weight=w, step_since=self.now.isoformat(), step_phase="step")
            since = self.now
        left = since + bake - self.now
        if left > timedelta(0):
            return self._pending(
                (), f"{self._phase(w)} baking, {_span(left)} left", since + bake, record=record
            )
        if overrun == "pause":
            return self._pending((), f"{self._phase(w)}: {gate.waiting_text()}", gate.opens_at, record=record)
        step = min(s for s in strategy.steps if s > w)
        return self._move(flow, step)

    def _flip(self, flow: _Flow, w: int, test_w: int) -> Decision:
        """Green has all production traffic, blue is still primary: last hook, then green becomes primary."""
        alarm = self._alarm()
        if alarm:
            return self._rollback(flow, alarm, w, test_w)
        hooked = self._hook("postProductionTraffic", flow, w, test_w)
        if hooked is not None:
            return hooked
        assert flow.green is not None
        record = replace(self.record, step_weight=100, step_since=self.now.isoformat(), step_phase="final")
        return self._pending(
            (SetPrimary(flow.green.arn),), f"{self.label} serving 100 %, now primary", POLL, record=record
        )

    def _serving(self, primary: TaskSetView) -> Decision:
        """The target is primary: final bake with the old task set kept, then clean up; or steady state."""
        obs, record = self.obs, self.record
        others = [t for t in obs.task_sets if t is not primary]
        live = [t for t in others if t.status != "DRAINING"]
        ptg = primary.target_group or obs.wiring.target_groups[0]
        fix = self._settle_weights(ptg)
        baking = self.no_record or (self.mine is not None and self.mine.result == IN_PROGRESS)
        if live and baking:
            old = self._live_other(prefer=record.blue) or live[0]
            alarm = self._alarm()
            if alarm:
                return self._rollback_flipped(primary, old, alarm, failed=True)
            since = _parse(record.step_since) if record.step_phase == "final" else None
            if since is None:
                record = replace(record, step_weight=100, step_since=self.now.isoformat(), step_phase="final")
                since = self.now
            end = since + self.strategy.bake
            if end > self.now:
                text = f"{self.label} serving 100 %, final bake {_span(end - self.now)} left"
                return self._pending(fix, text, end, record=record)
            deletes = tuple(DeleteTaskSet(t.arn) for t in live)
            done = replace(record, result=SUCCEEDED, step_phase=None)
            return self._decision((*fix, *deletes), done, SUCCESS, f"{self.label} serving 100 %", None)
        outcome = record.outcome
        if self.prev_in_flight is not None:  # a revert: the rollout in flight went back to this revision
            outcome = f"rolled back to {self.label}"
        done = replace(record, result=SUCCEEDED, step_phase=None, outcome=outcome)
        actions: tuple[Action, ...] = (*fix, *(DeleteTaskSet(t.arn) for t in live))
        if not obs.service_in_sync:
            if self.gate.frozen_by is not None:
                return self._pending(actions, self.gate.frozen_text(), self.gate.frozen_until, forward=False)
            return self._decision(
                (UpdateService(), *actions),
                replace(done, result=IN_PROGRESS),
                PENDING,
                f"updating {self.label} service settings",
                self.now + POLL,
            )
        return self._decision(actions, done, SUCCESS, outcome or f"{self.label} serving 100 %", None)

    def _bootstrap(self) -> Decision:
        """No primary task set yet: create the target's, give it all traffic, make it primary."""
        obs, gate = self.obs, self.gate
        if gate.frozen_by is not None:
            return self._pending((), gate.frozen_text(), gate.frozen_until, forward=False)
        if obs.target is None:
            return self._pending((Register(),), f"registering {self.label}", POLL)
        mine = next(
            (t for t in obs.task_sets if t.status != "DRAINING" and t.task_definition == obs.target), None
        )
        if mine is None:
            create = CreateTaskSet(obs.target, obs.wiring.target_groups[0], obs.sha)
            return self._pending((create,), f"creating {self.label} task set", POLL)
        if not mine.stable:
            return self._pending((), f"waiting for {self.label} task set: {_counts(mine)}", POLL)
        ptg = mine.target_group or obs.wiring.target_groups[0]
        others = tuple(
            DeleteTaskSet(t.arn) for t in obs.task_sets if t is not mine and t.status != "DRAINING"
        )
        actions = (*self._settle_weights(ptg), SetPrimary(mine.arn), *others)
        done = replace(self.record, result=SUCCEEDED)
        return self._decision(actions, done, SUCCESS, f"{self.label} serving 100 %", None)

    def hand_back(self, to: str, record: AgentRecord | None) -> Decision:
        """See :func:`hand_back`."""
        obs, prev = self.obs, self.prev_in_flight
        live = [t for t in obs.task_sets if t.status != "DRAINING"]
        blue = prev.blue if prev is not None else None
        keep = (
            next((t for t in live if t.task_definition == blue and t.stable), None)
            or self.primary
            or next((t for t in live if t.stable), None)
        )
        switching = f"switching from engine agent to {to}"
        if keep is None:
            if not live:
                text = f"{switching} needs a task set to keep; the service has none: re-create it"
                return Decision((), record, FAILURE, _cut(text), other_commits=self.superseded)
            text = f"{switching}: waiting for {_labels(live)} task set to be stable"
            return Decision((), record, PENDING, _cut(text), self.now + POLL, self.superseded)
        others = [t for t in live if t is not keep]
        actions: list[Action] = list(self._settle_weights(keep.target_group or obs.wiring.target_groups[0]))
        if keep.status != "PRIMARY":
            actions.append(SetPrimary(keep.arn))
        actions += [DeleteTaskSet(t.arn) for t in others]
        if others:
            text = f"{switching}: traffic back on {_label(keep)}, removing {_labels(others)}"
        else:
            text = f"{switching}: {_label(keep)} serving, the only task set"
        return Decision(tuple(actions), record, PENDING, _cut(text), self.now + POLL, self.superseded)

    def _failed(self, record: AgentRecord) -> Decision:
        """This content failed: make sure it is rolled back (a crash may have cut that short); no retry."""
        obs, primary = self.obs, self.primary
        assert primary is not None
        target = record.task_definition or obs.target
        if target is not None and primary.task_definition == target:
            old = self._live_other(prefer=record.blue)
            if old is not None:
                return self._rollback_flipped(primary, old, record.reason, failed=True)
            return Decision((), record, FAILURE, record.reason or "rollout failed; fix or revert the commit")
        ptg = primary.target_group or obs.wiring.target_groups[0]
        actions = (
            *self._settle_weights(ptg),
            *(DeleteTaskSet(t.arn) for t in obs.task_sets if t is not primary and t.status != "DRAINING"),
        )
        wake = self.now + POLL if actions else None
        return self._decision(
            actions, record, FAILURE, record.reason or "rollout failed; fix or revert the commit", wake
        )

    # -- supersede and rollback -------------------------------------------------------------------------

    def _abort(self, flow: _Flow, strays: list[TaskSetView], w: int, test_w: int) -> Decision:
        """Task sets that are neither blue nor the target (a superseded rollout's green): weights back to
        blue, then delete them, in one decision; the target rolls out from blue once they are gone."""
        actions = (*self._back_to_blue(flow, w, test_w), *(DeleteTaskSet(t.arn) for t in strays))
        record = replace(self.record, step_weight=0, step_since=None, step_phase=None)
        text = f"aborting {_labels(strays)}: traffic back on {_label(flow.blue)}, then {self.label}"
        return self._pending(actions, text, POLL, record=record, forward=False)

    def _abort_flipped(self, old: TaskSetView) -> Decision:
        """The superseded rollout had made its green primary: make the old task set primary again."""
        assert self.primary is not None
        actions = self._flip_back(self.primary, old)
        base = replace(self.record, blue=old.task_definition)  # blue is the old task set again
        if self.obs.target == old.task_definition:  # a revert: this is the rollback, and it is done
            text = f"rolled back to {self.label}"
            record = replace(base, result=SUCCEEDED, outcome=text)
            return self._decision(actions, record, SUCCESS, text, self.now + POLL)
        text = f"aborting {_label(self.primary)}: traffic back on {_label(old)}, then {self.label}"
        return self._decision(actions, base, PENDING, text, self.now + POLL)

    def _rollback(self, flow: _Flow, reason: str, w: int, test_w: int) -> Decision:
        """Traffic back on blue and green deleted, in ONE decision; the content is not retried."""
        actions = list(self._back_to_blue(flow, w, test_w))
        if flow.green is not None:
            actions.append(DeleteTaskSet(flow.green.arn))
        text = _cut(reason if reason.startswith(("rolled back", "hook ")) else f"rolled back: {reason}")
        record = replace(self.record, result=FAILED, reason=text)
        return self._decision(tuple(actions), record, FAILURE, text, self.now + POLL)

    def _rollback_flipped(self, green: TaskSetView, old: TaskSetView, reason: str, failed: bool) -> Decision:
        text = _cut(reason if reason.startswith(("rolled back", "hook ")) else f"rolled back: {reason}")
        record = replace(self.record, result=FAILED, reason=text) if failed else self.record
        return self._decision(self._flip_back(green, old), record, FAILURE, text, self.now + POLL)

    def _flip_back(self, green: TaskSetView, old: TaskSetView) -> tuple[Action, ...]:
        wiring = self.obs.wiring
        old_tg = old.target_group or wiring.target_groups[0]
        other = wiring.target_groups[1] if old_tg == wiring.target_groups[0] else wiring.target_groups[0]
        weights = ((old_tg, 100), (other, 0))
        actions: list[Action] = [SetWeights(wiring.production_rule, weights)]
        if wiring.test_rule is not None:
            actions.append(SetWeights(wiring.test_rule, weights))
        actions += [SetPrimary(old.arn), DeleteTaskSet(green.arn)]
        return tuple(actions)

    def _back_to_blue(self, flow: _Flow, w: int, test_w: int) -> tuple[Action, ...]:
        wiring, traffic = self.obs.wiring, self.obs.traffic
        weights = ((flow.blue_tg, 100), (flow.green_tg, 0))
        actions: list[Action] = []
        if w > 0 or _off(traffic.production, flow.blue_tg):
            actions.append(SetWeights(wiring.production_rule, weights))
        if wiring.test_rule is not None and (test_w > 0 or _off(traffic.test or {}, flow.blue_tg)):
            actions.append(SetWeights(wiring.test_rule, weights))
        return tuple(actions)

    def _settle_weights(self, ptg: str) -> tuple[Action, ...]:
        """Weights that put all traffic (production and test) on the primary's target group, if not yet so."""
        wiring, traffic = self.obs.wiring, self.obs.traffic
        other = wiring.target_groups[1] if ptg == wiring.target_groups[0] else wiring.target_groups[0]
        weights = ((ptg, 100), (other, 0))
        actions: list[Action] = []
        if _off(traffic.production, ptg):
            actions.append(SetWeights(wiring.production_rule, weights))
        if wiring.test_rule is not None and _off(traffic.test or {}, ptg):
            actions.append(SetWeights(wiring.test_rule, weights))
        return tuple(actions)

    # -- hooks, alarms, moves -----------------------------------------------------------------------------

    def _hook(self, stage: str, flow: _Flow, w: int, test_w: int) -> Decision | None:
        """None when the stage's hook passed (or none is configured); else the decision that waits for it."""
        hook = self.strategy.hook(stage)
        if hook is None:
            return None
        state = self._hook_state(stage)
        weights = ((flow.blue_tg, 100 - w), (flow.green_tg, w))
        if state is None:
            return self._pending((RunHook(stage, weights),), f"hook {stage} running for {self.label}", POLL)
        if state.status == "SUCCEEDED":
            return None
        if state.status == "IN_PROGRESS":
            started = _parse(self.record.started_at)
            first = max(state.first_called_at, started) if started is not None else state.first_called_at
            deadline = first + hook.timeout
            if self.now >= deadline:
                if hook.on_timeout == "continue":
                    return None
                return self._rollback(flow, f"hook {stage} timed out after {_span(hook.timeout)}", w, test_w)
            text = f"hook {stage} in progress for {self.label}, times out in {_span(deadline - self.now)}"
            again = state.last_called_at + POLL
            if self.now >= again:
                return self._pending((RunHook(stage, weights),), text, POLL)
            return self._pending((), text, again)
        return self._rollback(flow, f"hook {stage} failed: {state.reason or state.status}", w, test_w)

    def _hook_state(self, stage: str) -> HookState | None:
        """This rollout's answer for ``stage``: an answer last given before the rollout started (an earlier
        rollout of the same content) is ignored, and its timeout counts from this rollout's start."""
        state = self.obs.hooks.get(stage)
        started = _parse(self.record.started_at)
        if state is None or (started is not None and state.last_called_at < started):
            return None
        return state

    def _alarm(self) -> str:
        """``alarm web-5xx in ALARM`` for the first of the strategy's alarms in ALARM, else empty."""
        for name in self.strategy.alarms:
            if self.obs.alarms.get(name) == "ALARM":
                return f"alarm {name} in ALARM"
        return ""

    def _move(self, flow: _Flow, step: int) -> Decision:
        """Production weights to the next step; the bake of that step starts now."""
        if not self.gate.traffic_may_move and not self._overrun_finish():
            return self._pending((), f"{self.label} ready: {self.gate.waiting_text()}", self.gate.opens_at)
        weights = ((flow.blue_tg, 100 - step), (flow.green_tg, step))
        record = replace(self.record, step_weight=step, step_since=self.now.isoformat(), step_phase="step")
        move = SetWeights(self.obs.wiring.production_rule, weights)
        return self._pending(
            (move,), f"{self._phase(step)}: shifting traffic to {self.label}", POLL, record=record
        )

    def _overrun_finish(self) -> bool:
        """A closed gate still lets a half-moved rollout carry on when the window's overrun is finish."""
        gate = self.gate
        window = gate.frozen_by if gate.frozen_by is not None else gate.last_closed
        return window is not None and window.overrun == "finish"

    # -- small helpers ----------------------------------------------------------------------------------

    def _live_other(self, prefer: str | None) -> TaskSetView | None:
        others = [t for t in self.obs.task_sets if t is not self.primary and t.status != "DRAINING"]
        return next((t for t in others if t.task_definition == prefer), others[0] if others else None)

    def _phase(self, w: int) -> str:
        return f"{_KIND.get(self.strategy.type, self.strategy.type)} {w} %"

    def _start_time(self) -> datetime:
        """A new record starts now; resuming without any record, from the oldest hook answer seen."""
        if self.no_record and self.obs.hooks:
            return min([self.now, *(h.first_called_at for h in self.obs.hooks.values())])
        return self.now

    def _pending(
        self,
        actions: tuple[Action, ...],
        text: str,
        wake: datetime | timedelta | None,
        record: AgentRecord | None = None,
        forward: bool = True,
    ) -> Decision:
        """A rollout step; ``forward`` steps also carry the service's other settings (UpdateService)."""
        if forward and not self.obs.service_in_sync and self.gate.frozen_by is None:
            actions = (UpdateService(), *actions)
        when = self.now + wake if isinstance(wake, timedelta) else wake
        return self._decision(actions, record or self.record, PENDING, text, when)

    def _decision(
        self, actions: tuple[Action, ...], record: AgentRecord, state: str, text: str, wake: datetime | None
    ) -> Decision:
        if actions and wake is None:
            wake = self.now + POLL  # come back to see the calls took effect (a deleted task set drained)
        change = self.gate.next_change() if state == PENDING else None
        if wake is not None and change is not None and self.now < change < wake:
            wake = change  # a window opening or closing mid-bake may change the decision (overrun)
        return Decision(actions, record, state, _cut(text), wake, other_commits=self.superseded)


@dataclass(frozen=True)
class _Flow:
    """Blue, green and their target groups for one tick of a rollout."""

    blue: TaskSetView
    green: TaskSetView | None
    blue_tg: str
    green_tg: str


# ---------------------------------------------------------------------------------------------- helpers


_KIND = {"blueGreen": "blue/green", "linear": "linear", "canary": "canary"}
_OPEN = Gate()
STABILIZE_TIMEOUT = timedelta(minutes=15)


def _off(weights: Mapping[str, int], tg: str) -> bool:
    """True unless ``tg`` gets 100 and every other target group 0."""
    return int(weights.get(tg, 0)) != 100 or any(int(v) for k, v in weights.items() if k != tg)


def _label(task_set: TaskSetView) -> str:
    """``web:4`` from a task definition ARN (``...:task-definition/web:4``)."""
    return task_set.task_definition.rsplit("/", 1)[-1]


def _labels(task_sets: list[TaskSetView]) -> str:
    return ", ".join(sorted({_label(t) for t in task_sets}))


def _counts(task_set: TaskSetView) -> str:
    return f"{task_set.running}/{task_set.desired} running"


def _span(delta: timedelta) -> str:
    """``4m``, ``1h30m``, ``45s``: rounded up to whole minutes from a minute on."""
    seconds = max(0, math.ceil(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = math.ceil(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _cut(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _duration(value: Any) -> timedelta:
    return timedelta(seconds=duration_seconds(value)) if value else timedelta(0)


def _percent(value: Any) -> int:
    """Weights on an ALB rule are integers: 0.1 % rounds up to 1, 12.5 % to 13."""
    return max(1, min(100, math.ceil(float(value))))


def _alarm_name(ref: Any) -> str:
    """An alarm reference as a name: ``{name: web-5xx}``, ``web-5xx`` or ``arn:...:alarm:web-5xx``."""
    if isinstance(ref, Mapping):
        ref = ref.get("name") or ref.get("arn") or ""
    text = str(ref)
    return text.split(":alarm:", 1)[1] if ":alarm:" in text else text
