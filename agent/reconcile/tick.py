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

A commit that changes a few services is acted on in a first pass over those services alone, before every
service is read (focusing.py). Until a tick's first AWS write it is only reading: at each safe point
(between steps, between DescribeServices calls) ``checkpoint`` raises ``Interrupted`` when
``interrupted()`` says a newer event asked for a tick; such a tick has written and reported nothing.
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
from agent.errors import Interrupted, InvalidInput, Problem
from agent.manifests.caching import DesiredCache
from agent.manifests.model import Desired
from agent.manifests.tree import Tree
from agent.plan.drift import mark_drift
from agent.plan.model import Plan
from agent.plan.ordering import ordering_of
from agent.plan.planning import build_plan
from agent.reconcile.acting import Actor
from agent.reconcile.deciding import Decided, decide
from agent.reconcile.drift import settled
from agent.reconcile.fingerprints import rollout_records
from agent.reconcile.focusing import Focus
from agent.reconcile.lanes import Lanes
from agent.reconcile.prune import Pruner
from agent.reconcile.results import PlanResult, TickResult
from agent.reconcile.statuses import Reporter, outcome
from agent.rollout.decisions import FAILURE, SUCCESS, Decision
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
        self.focus = Focus()
        self.interrupted: Callable[[], bool] = lambda: False  # a newer event asks to stop a reading tick
        self.lanes.checkpoint = self.checkpoint
        self._acting = False  # the tick in progress has begun to act: it is no longer interrupted
        self._reconciled: Desired | None = None  # what the last tick acted on in full

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
        self.checkpoint()
        revision = getattr(tree, "revision", None)
        if self.lanes.accounts:
            return self.lanes.plan(desired, revision, self.pruner)
        return self._plan_home(desired, revision)

    def _plan_home(self, desired: Desired, revision: str | None, prune: bool = True) -> PlanResult:
        home = self.lanes.home
        resolved = home.resolver.resolve(desired)  # raises InvalidInput for names that match nothing
        self.checkpoint()
        observed = home.observer.observe(resolved)
        if prune:
            observed.orphans = self.pruner.orphans(resolved, home.observer, None)
        self.checkpoint()
        memo = home.memo if prune else None  # the first pass plans a few services: the memo keeps them all
        plan = build_plan(resolved, observed, revision=revision, memo=memo)
        warnings = tuple(str(w) for w in desired.warnings)
        if warnings:
            plan = Plan(plan.changes, plan.revision, tuple(plan.warnings) + warnings)
        records = rollout_records(self.store, resolved)
        plan = mark_drift(plan, settled(resolved, records, self.config))
        return PlanResult(plan, resolved, observed, records=records)

    def checkpoint(self) -> None:
        """A safe point of the read-only half: raise ``Interrupted`` if a newer event asks for a tick and
        this one has not begun to act."""
        if not self._acting and self.interrupted():
            raise Interrupted("a newer event asked for a tick")

    # -- one tick of the GitOps loop -------------------------------------------------------------------

    def tick(self, tree: Tree, sha: str) -> TickResult:
        """Reconcile ECS with the manifests at ``sha`` and report on that commit."""
        try:
            return self._tick(tree, sha)
        finally:
            self._acting = False  # until the next tick acts, it only reads

    def _tick(self, tree: Tree, sha: str) -> TickResult:
        now = self.clock()
        bound = log.bind(sha=sha[:12])
        try:
            loaded = self.desired.load(tree, self.config)
            first, first_others = self._first_pass(loaded, tree, sha, now)
            result = self.plan(tree)
        except InvalidInput as e:
            return self._invalid(sha, e.problems)

        parts = result.parts or [result]
        decided, decisions, reported, drifted = self._decide(parts, result, sha, now)
        self.checkpoint()  # the last point at which a newer event stops this tick
        self._acting = True
        errors, unfinished = self._act(parts, decided, decisions, now)
        self._reconciled = loaded
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
        if first and result_word in ("unchanged", "rolling"):
            result_word = "applied"  # by the first pass; this pass sees its rollouts under way
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
            other_statuses={**first_others, **others},
            first_pass=first,
        )

    # -- the steps after planning, for the first pass and the whole tick -------------------------------

    def _decide(
        self, parts: list[PlanResult], result: PlanResult, sha: str, now: datetime
    ) -> tuple[list[Decided], dict[str, Decision], set[str], set[str]]:
        """Decide: every engine, in every lane (one part per account and region, or the whole commit).
        Then gate: one order for the whole commit; a service waits for what it depends on in any account.
        Returns each part's Decided, the gated decisions, the services only reported drifted, and the
        drifted ones."""
        decided: list[Decided] = []
        for part in parts:
            engines = self.lanes.engines(self.lanes.of(part))
            decided.append(decide(part, engines, self.store, sha, now))
        decisions = {n: d for one in decided for n, d in one.decisions.items()}
        reported: set[str] = set().union(*(one.reported for one in decided))
        drifted: set[str] = set().union(*(one.drifted for one in decided))
        starting = set().union(*(one.starting() for one in decided))
        decisions = gate(decisions, ordering_of(result.desired), running=reported, starting=starting)
        return decided, decisions, reported, drifted

    def _act(
        self, parts: list[PlanResult], decided: list[Decided], decisions: dict[str, Decision], now: datetime
    ) -> tuple[dict[str, str], dict[str, BaseException]]:
        """Act: each lane its share (updating ``decisions`` in place). Returns the errors for the aggregate
        status and the services a transient error stopped."""
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
        return errors, unfinished

    def _first_pass(
        self, desired: Desired, tree: Tree, sha: str, now: datetime
    ) -> tuple[tuple[str, ...], dict[tuple[str, str], CommitStatus]]:
        """Act on the services the commit changed before reading the others (focusing.py). Returns the
        "cluster/service" it acted on and the statuses it wrote on superseded commits."""
        if self.lanes.accounts:
            return (), {}
        part = self.focus.part(self._reconciled, desired)
        if part is None:
            return (), {}
        self.checkpoint()
        result = self._plan_home(part, getattr(tree, "revision", None), prune=False)
        shared = [c for c in result.plan.changes if c.kind in ("Cluster", "CapacityProvider")]
        if any(c.changes_anything for c in shared):
            return (), {}  # shared changes go first, in the whole tick
        decided, decisions, _, _ = self._decide([result], result, sha, now)
        acting = sorted(n for n, d in decisions.items() if d.actions)
        if not acting:
            return (), {}
        self.checkpoint()
        self._acting = True
        _, unfinished = self._act([result], decided, decisions, now)
        others = self.reporter.other_statuses(part, decisions)
        if others:
            self.reporter.report(others.values())
        names = tuple(
            f"{m.spec['cluster']}/{m.spec.get('serviceName', n)}"
            for n, m in part.services.items()
            if n in acting and n not in unfinished
        )
        log.info("tick.first_pass", sha=sha[:12], services=len(part.services), acted=len(names))
        return names, others

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
