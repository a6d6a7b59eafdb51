"""The phases of an agent-engine rollout, in the order a rollout meets them.

Bootstrap (no primary yet), rolling out (register, create green, wait for it, test traffic, the
production steps and their bakes, the flip to primary), serving (the final bake, then clean up), a
failed rollout kept rolled back, and the hand-back to another engine. Worked examples:
:mod:`agent.rollout.progressive`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from agent.rollout.decisions import FAILURE, PENDING, SUCCESS, Decision

from .actions import Action, CreateTaskSet, DeleteTaskSet, Register, SetPrimary, SetWeights, UpdateService
from .model import FAILED, IN_PROGRESS, POLL, STABILIZE_TIMEOUT, SUCCEEDED, AgentRecord, TaskSetView
from .tick import Flow, Tick, counts, cut, label, labels, parse, span


class Rollout(Tick):
    """The decision of one tick, phase by phase (the shared moves are :class:`Tick`'s)."""

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
            text = f"primary task set {label(blue)} is not registered to targetGroup or alternateTargetGroup"
            return Decision((), self.mine, FAILURE, cut(text))
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
        flow = Flow(blue, green, blue_tg, green_tg)

        # 0. Safety first: superseded task sets go (traffic back on blue first); no traffic on an
        #    unstable or missing green.
        if live_strays:
            return self._abort(flow, live_strays, w, test_w)
        if green is None and (w > 0 or test_w > 0):
            actions = self._back_to_blue(flow, w, test_w)
            return self._pending(actions, f"traffic back on {label(blue)}: no {self.label} task set", POLL)
        if green is not None and not green.stable and (w > 0 or test_w > 0):
            return self._rollback(
                flow, f"{self.label} task set unstable with traffic: {counts(green)}", w, test_w
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
            return self._pending((), f"waiting for {labels(strays)} task set to drain", POLL)

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
            since = parse(self.record.green_since) or self.now
            if self.now - since >= STABILIZE_TIMEOUT:
                reason = f"{self.label} task set not stable after {span(STABILIZE_TIMEOUT)}: {counts(green)}"
                return self._rollback(flow, reason, w, test_w)
            record = (
                self.record
                if self.record.green_since
                else replace(self.record, green_since=since.isoformat())
            )
            return self._pending(
                (), f"waiting for {self.label} task set: {counts(green)}", POLL, record=record
            )

        if w == 0:
            return self._before_production(flow, test_w)
        if w < 100:
            return self._stepping(flow, w, test_w)
        return self._flip(flow, w, test_w)

    def _before_production(self, flow: Flow, test_w: int) -> Decision:
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

    def _stepping(self, flow: Flow, w: int, test_w: int) -> Decision:
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
        since = parse(record.step_since) if record.step_weight == w and record.step_phase == "step" else None
        if since is None:  # weights already moved (by us before a crash, or by hand): bake from now
            record = replace(record, step_weight=w, step_since=self.now.isoformat(), step_phase="step")
            since = self.now
        left = since + bake - self.now
        if left > timedelta(0):
            return self._pending(
                (), f"{self._phase(w)} baking, {span(left)} left", since + bake, record=record
            )
        if overrun == "pause":
            return self._pending((), f"{self._phase(w)}: {gate.waiting_text()}", gate.opens_at, record=record)
        step = min(s for s in strategy.steps if s > w)
        return self._move(flow, step)

    def _flip(self, flow: Flow, w: int, test_w: int) -> Decision:
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
            since = parse(record.step_since) if record.step_phase == "final" else None
            if since is None:
                record = replace(record, step_weight=100, step_since=self.now.isoformat(), step_phase="final")
                since = self.now
            end = since + self.strategy.bake
            if end > self.now:
                text = f"{self.label} serving 100 %, final bake {span(end - self.now)} left"
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
            return self._pending((), f"waiting for {self.label} task set: {counts(mine)}", POLL)
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
                return Decision((), record, FAILURE, cut(text), other_commits=self.superseded)
            text = f"{switching}: waiting for {labels(live)} task set to be stable"
            return Decision((), record, PENDING, cut(text), self.now + POLL, self.superseded)
        others = [t for t in live if t is not keep]
        actions: list[Action] = list(self._settle_weights(keep.target_group or obs.wiring.target_groups[0]))
        if keep.status != "PRIMARY":
            actions.append(SetPrimary(keep.arn))
        actions += [DeleteTaskSet(t.arn) for t in others]
        if others:
            text = f"{switching}: traffic back on {label(keep)}, removing {labels(others)}"
        else:
            text = f"{switching}: {label(keep)} serving, the only task set"
        return Decision(tuple(actions), record, PENDING, cut(text), self.now + POLL, self.superseded)

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
