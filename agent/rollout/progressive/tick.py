"""One tick of an agent-engine rollout: the observation read once, and the moves its phases share.

:class:`Tick` holds what every phase builds its decision from: traffic back on blue, rollback and abort
(never held by a window), hooks, alarms and the next traffic step, and the decision itself (with its
wake-up time). The phases themselves are in :mod:`agent.rollout.progressive.phases`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from agent.rollout.decisions import FAILURE, PENDING, SUCCESS, Decision
from agent.rollout.windows import Gate

from .actions import Action, DeleteTaskSet, RunHook, SetPrimary, SetWeights, UpdateService
from .model import (
    FAILED,
    IN_PROGRESS,
    POLL,
    SUCCEEDED,
    AgentObservation,
    AgentRecord,
    HookState,
    Strategy,
    TaskSetView,
)


class Tick:
    """One call of :func:`~agent.rollout.progressive.advance`: the observation, read once, and the
    decisions built from it."""

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
                text = cut(f"superseded by {obs.sha[:12]} before it finished")
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

    # -- supersede and rollback -------------------------------------------------------------------------

    def _abort(self, flow: Flow, strays: list[TaskSetView], w: int, test_w: int) -> Decision:
        """Task sets that are neither blue nor the target (a superseded rollout's green): weights back to
        blue, then delete them, in one decision; the target rolls out from blue once they are gone."""
        actions = (*self._back_to_blue(flow, w, test_w), *(DeleteTaskSet(t.arn) for t in strays))
        record = replace(self.record, step_weight=0, step_since=None, step_phase=None)
        text = f"aborting {labels(strays)}: traffic back on {label(flow.blue)}, then {self.label}"
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
        text = f"aborting {label(self.primary)}: traffic back on {label(old)}, then {self.label}"
        return self._decision(actions, base, PENDING, text, self.now + POLL)

    def _rollback(self, flow: Flow, reason: str, w: int, test_w: int) -> Decision:
        """Traffic back on blue and green deleted, in ONE decision; the content is not retried."""
        actions = list(self._back_to_blue(flow, w, test_w))
        if flow.green is not None:
            actions.append(DeleteTaskSet(flow.green.arn))
        text = cut(reason if reason.startswith(("rolled back", "hook ")) else f"rolled back: {reason}")
        record = replace(self.record, result=FAILED, reason=text)
        return self._decision(tuple(actions), record, FAILURE, text, self.now + POLL)

    def _rollback_flipped(self, green: TaskSetView, old: TaskSetView, reason: str, failed: bool) -> Decision:
        text = cut(reason if reason.startswith(("rolled back", "hook ")) else f"rolled back: {reason}")
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

    def _back_to_blue(self, flow: Flow, w: int, test_w: int) -> tuple[Action, ...]:
        wiring, traffic = self.obs.wiring, self.obs.traffic
        weights = ((flow.blue_tg, 100), (flow.green_tg, 0))
        actions: list[Action] = []
        if w > 0 or off(traffic.production, flow.blue_tg):
            actions.append(SetWeights(wiring.production_rule, weights))
        if wiring.test_rule is not None and (test_w > 0 or off(traffic.test or {}, flow.blue_tg)):
            actions.append(SetWeights(wiring.test_rule, weights))
        return tuple(actions)

    def _settle_weights(self, ptg: str) -> tuple[Action, ...]:
        """Weights that put all traffic (production and test) on the primary's target group, if not yet so."""
        wiring, traffic = self.obs.wiring, self.obs.traffic
        other = wiring.target_groups[1] if ptg == wiring.target_groups[0] else wiring.target_groups[0]
        weights = ((ptg, 100), (other, 0))
        actions: list[Action] = []
        if off(traffic.production, ptg):
            actions.append(SetWeights(wiring.production_rule, weights))
        if wiring.test_rule is not None and off(traffic.test or {}, ptg):
            actions.append(SetWeights(wiring.test_rule, weights))
        return tuple(actions)

    # -- hooks, alarms, moves -----------------------------------------------------------------------------

    def _hook(self, stage: str, flow: Flow, w: int, test_w: int) -> Decision | None:
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
            started = parse(self.record.started_at)
            first = max(state.first_called_at, started) if started is not None else state.first_called_at
            deadline = first + hook.timeout
            if self.now >= deadline:
                if hook.on_timeout == "continue":
                    return None
                last = f" ({state.reason})" if state.reason else ""
                return self._rollback(
                    flow, f"hook {stage} timed out after {span(hook.timeout)}{last}", w, test_w
                )
            text = f"hook {stage} in progress for {self.label}, times out in {span(deadline - self.now)}"
            if state.reason:  # what the hook said last, or why it could not be asked
                text += f": {state.reason}"
            again = state.last_called_at + POLL
            if self.now >= again:
                return self._pending((RunHook(stage, weights),), text, POLL)
            return self._pending((), text, again)
        return self._rollback(flow, f"hook {stage} failed: {state.reason or state.status}", w, test_w)

    def _hook_state(self, stage: str) -> HookState | None:
        """This rollout's answer for ``stage``: an answer last given before the rollout started (an earlier
        rollout of the same content) is ignored, and its timeout counts from this rollout's start."""
        state = self.obs.hooks.get(stage)
        started = parse(self.record.started_at)
        if state is None or (started is not None and state.last_called_at < started):
            return None
        return state

    def _alarm(self) -> str:
        """``alarm web-5xx in ALARM`` for the first of the strategy's alarms in ALARM, else empty."""
        for name in self.strategy.alarms:
            if self.obs.alarms.get(name) == "ALARM":
                return f"alarm {name} in ALARM"
        return ""

    def _move(self, flow: Flow, step: int) -> Decision:
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
        return Decision(actions, record, state, cut(text), wake, other_commits=self.superseded)


@dataclass(frozen=True)
class Flow:
    """Blue, green and their target groups for one tick of a rollout."""

    blue: TaskSetView
    green: TaskSetView | None
    blue_tg: str
    green_tg: str


# ---------------------------------------------------------------------------------------------- helpers


_KIND = {"blueGreen": "blue/green", "linear": "linear", "canary": "canary"}
_OPEN = Gate()


def off(weights: Mapping[str, int], tg: str) -> bool:
    """True unless ``tg`` gets 100 and every other target group 0."""
    return int(weights.get(tg, 0)) != 100 or any(int(v) for k, v in weights.items() if k != tg)


def label(task_set: TaskSetView) -> str:
    """``web:4`` from a task definition ARN (``...:task-definition/web:4``)."""
    return task_set.task_definition.rsplit("/", 1)[-1]


def labels(task_sets: list[TaskSetView]) -> str:
    return ", ".join(sorted({label(t) for t in task_sets}))


def counts(task_set: TaskSetView) -> str:
    return f"{task_set.running}/{task_set.desired} running"


def span(delta: timedelta) -> str:
    """``4m``, ``1h30m``, ``45s``: rounded up to whole minutes from a minute on."""
    seconds = max(0, math.ceil(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = math.ceil(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def cut(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
