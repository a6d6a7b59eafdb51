"""A tiny pure model of what the agent engine steers (task sets, listener weights, hooks, alarms).

It applies a Decision's actions the way ECS and ELB would, checks the engine's invariants after every
single action (weights sum to 100; no weight on a target group without a stable task set; never three
task sets), and moves the world on between ticks (task sets start tasks, deleted ones drain away).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from agent.rollout.decisions import Decision
from agent.rollout.progressive import (
    AgentObservation,
    AgentRecord,
    CreateTaskSet,
    DeleteTaskSet,
    HookState,
    Register,
    RunHook,
    SetPrimary,
    SetWeights,
    Strategy,
    TaskSetView,
    Traffic,
    UpdateService,
    Wiring,
    advance,
)
from agent.rollout.windows import Window, gate

TG_A, TG_B = "arn:tg/a", "arn:tg/b"
PROD, TEST = "arn:rule/prod", "arn:rule/test"
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def td(revision: int) -> str:
    return f"arn:aws:ecs:eu-west-1:111122223333:task-definition/web:{revision}"


@dataclass
class Commit:
    sha: str
    fingerprint: str
    revision: int  # the task-definition revision this commit asks for


@dataclass
class World:
    """Blue web:4 serving from tg-a; the commit asks for web:5 (not registered yet)."""

    strategy: Strategy
    test_rule: bool = False
    windows: tuple[Window, ...] = ()
    now: datetime = T0
    commit: Commit = field(default_factory=lambda: Commit("a" * 40, "F2", 5))
    registered: set[int] = field(default_factory=lambda: {4})
    in_sync: bool = True
    task_sets: list[TaskSetView] = field(default_factory=list)
    prod: dict[str, int] = field(default_factory=lambda: {TG_A: 100, TG_B: 0})
    test: dict[str, int] | None = None
    alarms: dict[str, str] = field(default_factory=dict)
    hooks: dict[str, HookState] = field(default_factory=dict)
    answers: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # stage -> [(status, reason)]
    record: AgentRecord | None = None
    broken: set[int] = field(default_factory=set)  # revisions whose tasks never start
    log: list[tuple[tuple[str, ...], str, str]] = field(default_factory=list)
    hook_calls: list[tuple[str, tuple[tuple[str, int], ...]]] = field(default_factory=list)
    _ids: int = 0

    def __post_init__(self) -> None:
        if not self.task_sets:
            self.task_sets = [self._task_set(4, TG_A, "PRIMARY", stable=True, sha="0" * 40)]
        if self.test_rule and self.test is None:
            self.test = {TG_A: 100, TG_B: 0}

    # -- observation ---------------------------------------------------------------------------------

    def observation(self) -> AgentObservation:
        revision = self.commit.revision
        known = revision in self.registered
        return AgentObservation(
            sha=self.commit.sha,
            fingerprint=self.commit.fingerprint,
            target=td(revision) if known else None,
            target_label=f"web:{revision}" if known else "web:(new)",
            wiring=Wiring((TG_A, TG_B), PROD, TEST if self.test_rule else None, "app", 8080),
            task_sets=tuple(self.task_sets),
            traffic=Traffic(dict(self.prod), dict(self.test) if self.test is not None else None),
            alarms=dict(self.alarms),
            hooks=dict(self.hooks),
            gate=gate(self.windows, self.now),
            service_in_sync=self.in_sync,
        )

    def decide(self) -> Decision:
        return advance(self.record, self.observation(), self.strategy, self.now)

    # -- one tick --------------------------------------------------------------------------------------

    def tick(self) -> Decision:
        """Decide, carry the actions out in order (checking invariants after each), remember the record."""
        decision = self.decide()
        self.apply(decision)
        return decision

    def apply(self, decision: Decision) -> None:
        self.log.append(
            (tuple(type(a).__name__ for a in decision.actions), decision.state, decision.description)
        )
        assert len(decision.description) <= 140
        for action in decision.actions:
            self._do(action)
            self.check()
        self.record = decision.record

    def run(self, limit: int = 200, idle: timedelta = timedelta(seconds=30)) -> Decision:
        """Tick until the rollout succeeds or fails; the clock jumps to each wake-up (or ``idle`` on)."""
        for _ in range(limit):
            decision = self.tick()
            if decision.state in ("success", "failure") and not decision.actions:
                return decision
            self.settle(decision.wake_at if decision.wake_at is not None else self.now + idle)
        raise AssertionError(f"no end after {limit} ticks: {self.log[-5:]}")

    def run_until(self, text: str, limit: int = 200) -> Decision:
        """Tick until a decision's description contains ``text`` (that decision is applied)."""
        for _ in range(limit):
            decision = self.tick()
            if text in decision.description:
                return decision
            self.settle(
                decision.wake_at if decision.wake_at is not None else self.now + timedelta(seconds=30)
            )
        raise AssertionError(f"never saw {text!r}: {self.log[-5:]}")

    def settle(self, until: datetime) -> None:
        """Time passes: drained task sets are gone, others start up to two tasks."""
        self.now = max(until, self.now + timedelta(seconds=1))
        kept = []
        for t in self.task_sets:
            if t.status == "DRAINING":
                continue
            if not t.stable and self._revision(t) not in self.broken:
                running = min(t.desired, t.running + 2)
                t = replace(t, running=running, stable=running >= t.desired)
            kept.append(t)
        self.task_sets = kept

    # -- invariants ------------------------------------------------------------------------------------

    def check(self) -> None:
        assert len(self.task_sets) <= 2, f"three task sets: {self.task_sets}"
        assert sum(1 for t in self.task_sets if t.status == "PRIMARY") <= 1
        if not any(t.status == "PRIMARY" for t in self.task_sets):
            return  # a service being created: nothing serves yet, whatever the rule says
        for rule, weights in (("production", self.prod), ("test", self.test)):
            if weights is None:
                continue
            assert sum(weights.values()) == 100, f"{rule} weights {weights}"
            for tg, weight in weights.items():
                if weight > 0:
                    serving = [t for t in self.task_sets if t.target_group == tg and t.status != "DRAINING"]
                    assert serving and all(t.stable for t in serving), f"{rule} {weight} % to {tg}: {serving}"

    # -- helpers ---------------------------------------------------------------------------------------

    def by_revision(self, revision: int) -> TaskSetView:
        return next(t for t in self.task_sets if t.task_definition == td(revision))

    def primary(self) -> TaskSetView:
        return next(t for t in self.task_sets if t.status == "PRIMARY")

    def _do(self, action: object) -> None:
        if isinstance(action, Register):
            self.registered.add(self.commit.revision)
        elif isinstance(action, UpdateService):
            self.in_sync = True
        elif isinstance(action, CreateTaskSet):
            revision = int(action.task_definition.rsplit(":", 1)[1])
            assert revision in self.registered
            self.task_sets.append(
                self._task_set(revision, action.target_group, "ACTIVE", sha=action.external_id)
            )
        elif isinstance(action, SetWeights):
            weights = dict(action.weights)
            assert sum(weights.values()) == 100
            if action.rule == PROD:
                self.prod = weights
            else:
                assert action.rule == TEST and self.test is not None
                self.test = weights
        elif isinstance(action, SetPrimary):
            self.task_sets = [
                replace(
                    t,
                    status="PRIMARY"
                    if t.arn == action.task_set
                    else "ACTIVE"
                    if t.status == "PRIMARY"
                    else t.status,
                )
                for t in self.task_sets
            ]
        elif isinstance(action, DeleteTaskSet):
            self.task_sets = [
                replace(t, status="DRAINING") if t.arn == action.task_set else t for t in self.task_sets
            ]
        elif isinstance(action, RunHook):
            self.hook_calls.append((action.stage, action.weights))
            queue = self.answers.get(action.stage) or [("SUCCEEDED", "")]
            status, reason = queue.pop(0) if len(queue) > 1 else queue[0]
            previous = self.hooks.get(action.stage)
            first = previous.first_called_at if previous is not None else self.now
            self.hooks[action.stage] = HookState(action.stage, status, first, self.now, reason)
        else:  # pragma: no cover
            raise AssertionError(f"unknown action {action!r}")

    def _task_set(
        self, revision: int, tg: str, status: str, stable: bool = False, sha: str = ""
    ) -> TaskSetView:
        self._ids += 1
        return TaskSetView(
            id=f"ts-{self._ids}",
            arn=f"arn:aws:ecs:eu-west-1:111122223333:task-set/c/web/ts-{self._ids}",
            task_definition=td(revision),
            external_id=sha,
            status=status,
            target_group=tg,
            scale=100.0,
            running=4 if stable else 0,
            desired=4,
            stable=stable,
        )

    @staticmethod
    def _revision(t: TaskSetView) -> int:
        return int(t.task_definition.rsplit(":", 1)[1])
