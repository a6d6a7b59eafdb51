"""The loop, read top to bottom: load -> validate -> resolve -> observe -> plan -> decide -> gate -> act ->
prune -> report.

Level-triggered and idempotent: each tick reads everything it needs, so a crash at any point is healed by
the next tick. Each step is one call and raises a typed error (agent.errors) that says what happens next:
invalid input stops the tick before any AWS write and becomes a failure status; a transient error is
retried by the next tick; a rollout in progress asks to be woken at ``wake_at``.

Each service is driven by the engine that claims it (agent.engines): rolling, taskset (``engine:
agent``) or native (``engine: ecs``). Every engine decides first, in every account lane (lanes.py); then
one ordering gate over the whole commit holds back what waits for its dependencies (``dependsOn``,
waves); then each lane acts on its share (acting.py). A service whose content rolled out but no longer
matches ECS has drifted (drift.py); with ``sync.prune`` managed services no manifest names are deleted
last (prune.py). Statuses come from the decisions, made before anything ran (statuses.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.aws.accounts import accounts_of
from agent.aws.clients import Aws
from agent.aws.pacing import DEFAULT_CONCURRENCY, Pacer
from agent.engines.taskset import TasksetEngine
from agent.errors import InvalidInput, Problem
from agent.manifests.caching import DesiredCache
from agent.manifests.model import Desired
from agent.manifests.tree import Tree
from agent.plan.drift import mark_drift
from agent.plan.model import Plan
from agent.plan.ordering import ordering
from agent.plan.planning import build_plan
from agent.reconcile.acting import Actor
from agent.reconcile.deciding import Decided, decide
from agent.reconcile.drift import settled
from agent.reconcile.lanes import Lanes
from agent.reconcile.prune import Pruner
from agent.reconcile.results import PlanResult, TickResult
from agent.reconcile.statuses import Reporter, outcome
from agent.rollout.decisions import FAILURE, SUCCESS
from agent.rollout.ordering import gate
from agent.status.model import AGGREGATE, CommitStatus, truncate

log = structlog.get_logger()


class Reconciler:
    """Holds what lasts across ticks: AWS clients per lane, their engines, the store and the outbox."""

    def __init__(
        self,
        aws: Aws,
        config: Any = None,
        store: Any = None,
        outbox: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        pacer: Pacer | None = None,
    ) -> None:
        self.aws = aws
        self.config = config
        self.store = store
        self.clock = clock
        self.pacer = pacer or Pacer.from_config(config)
        pacing = getattr(config, "pacing", None)
        self.concurrency = max(1, int(getattr(pacing, "concurrency", DEFAULT_CONCURRENCY)))
        self.lanes = Lanes(aws, config, store, self.pacer, accounts_of(config, aws.region))
        self.pruner = Pruner(config, store)
        self.reporter = Reporter(store, outbox, clock, self.lanes.accounts)
        self.desired = DesiredCache()  # an unchanged manifest root is not loaded again

    @property
    def executor(self) -> Any:
        return self.lanes.home.executor

    @property
    def engine(self) -> TasksetEngine:
        """The home lane's task-set engine (the dashboard reads its last observations)."""
        return self.lanes.engines(self.lanes.home)["taskset"]  # type: ignore[return-value]

    # -- the read-only half: validate and plan ---------------------------------------------------------

    def plan(self, tree: Tree) -> PlanResult:
        desired = self.desired.load(tree, self.config)  # raises InvalidInput: nothing below runs
        revision = getattr(tree, "revision", None)
        if self.lanes.accounts:
            return self.lanes.plan(desired, revision, self.pruner, self._settled)
        home = self.lanes.home
        resolved = home.resolver.resolve(desired)  # raises InvalidInput for names that match nothing
        observed = home.observer.observe(resolved)
        observed.orphans = self.pruner.orphans(resolved, home.observer, None)
        plan = build_plan(resolved, observed, revision=revision, memo=home.memo)
        warnings = tuple(str(w) for w in desired.warnings)
        if warnings:
            plan = Plan(plan.changes, plan.revision, tuple(plan.warnings) + warnings)
        plan = mark_drift(plan, self._settled(resolved))
        return PlanResult(plan, resolved, observed)

    def _settled(self, desired: Desired) -> dict[str, bool]:
        return settled(desired, self.store, self.config)

    # -- one tick of the GitOps loop -------------------------------------------------------------------

    def tick(self, tree: Tree, sha: str) -> TickResult:
        """Reconcile ECS with the manifests at ``sha`` and report on that commit."""
        now = self.clock()
        bound = log.bind(sha=sha[:12])
        try:
            result = self.plan(tree)
        except InvalidInput as e:
            return self._invalid(sha, e.problems)

        # Decide: every engine, in every lane (one part per account and region, or the whole commit).
        parts = result.parts or [result]
        decided: list[Decided] = []
        for part in parts:
            engines = self.lanes.engines(self.lanes.of(part))
            decided.append(decide(part, engines, self.store, sha, now))
        decisions = {n: d for one in decided for n, d in one.decisions.items()}
        reported = set().union(*(one.reported for one in decided))
        drifted = set().union(*(one.drifted for one in decided))

        # Gate: one order for the whole commit; a service waits for what it depends on in any account.
        starting = set().union(*(one.starting() for one in decided))
        decisions = gate(decisions, ordering(result.desired.services), running=reported, starting=starting)

        # Act: each lane its share.
        self.lanes.intend(parts)
        actor = Actor(self.store, self.concurrency)
        errors: dict[str, str] = {}
        unfinished: dict[str, BaseException] = {}
        for part, one in zip(parts, decided, strict=True):
            one.decisions = {name: decisions[name] for name in part.desired.services if name in decisions}
            lane = self.lanes.of(part)
            part_errors, part_unfinished = actor.apply(part, one, lane.executor, now)
            decisions.update(one.decisions)
            unfinished.update(part_unfinished)
            if AGGREGATE in part_errors:
                label = f"{lane.account.label}: " if lane.account else ""
                joined = "; ".join(filter(None, [errors.get(AGGREGATE), label + part_errors[AGGREGATE]]))
                errors[AGGREGATE] = truncate(joined)
        self.lanes.save()
        if unfinished:  # a transient error: what was applied is remembered, the rest is retried next tick
            raise next(iter(unfinished.values()))

        # Prune last (within sync.pruneLimit, or what the commit's trailer allows), then report once.
        refused = self.pruner.refusal(parts, getattr(tree, "message", None))
        pruned: dict[str, CommitStatus] = {}
        for part in parts:
            executor = self.lanes.of(part).executor
            pruned.update(self.pruner.prune(part, executor, decisions, errors, reported, sha, refused))
        statuses = self.reporter.statuses(result.desired, decisions, errors, sha, reported)
        statuses.update(pruned)
        if refused:
            statuses[AGGREGATE] = CommitStatus(sha, AGGREGATE, FAILURE, f"prune refused: {refused}")
        others = self.reporter.other_statuses(result.desired, decisions)
        self.reporter.report([*statuses.values(), *others.values()])
        wakes = [d.wake_at for d in decisions.values() if d.wake_at]
        result_word = "failed" if refused else outcome(decisions, errors, reported)
        bound.info("tick.done", outcome=result_word, changes=result.plan.has_changes)
        deleted = tuple(s.context.split("/", 1)[1] for s in pruned.values() if s.state == SUCCESS)
        return TickResult(
            sha,
            result_word,
            statuses,
            min(wakes) if wakes else None,
            result.plan,
            drifted=tuple(sorted(drifted)),
            pruned=deleted,
            other_statuses=others,
        )

    def _invalid(self, sha: str, problems: list[Problem]) -> TickResult:
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0] if errors else Problem("", "", "invalid manifests")
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        status = CommitStatus(sha, AGGREGATE, FAILURE, truncate(f"invalid: {first}{more}"))
        log.warning("manifests.invalid", sha=sha[:12], problems=[str(p) for p in errors])
        self.reporter.report([status])
        return TickResult(sha, "invalid", {AGGREGATE: status}, problems=problems)

    def untrusted(self, sha: str, reason: str) -> TickResult:
        """A commit that failed signature verification: a failure status on it, and nothing else."""
        status = CommitStatus(sha, AGGREGATE, FAILURE, truncate(reason))
        self.reporter.report([status])
        return TickResult(sha, "untrusted", {AGGREGATE: status})
