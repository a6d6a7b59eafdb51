"""Carrying out one plan's decisions (one account's, or the commit's), once the ordering gate has run.

Shared changes (clusters, capacity providers) go first; if one fails, no service acts on this tick. Then
every service with actions asks its engine to act, ``pacing.concurrency`` at once; all threads share the
lane's Pacer, so together they stay within ECS's rate limits. Every new task-definition revision is
registered once per family (several services may share a family: the first registers, the others wait
for it and use its ARN), so registrations, paced at 1 per second past their burst, and updates overlap.
Then each decision's record is stored, except for services a transient error stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import Any

from agent.aws.errors import AwsPermanentError
from agent.aws.executing import Applied, Executor, change_key
from agent.engines import Step
from agent.plan.model import REGISTER
from agent.reconcile.deciding import Decided
from agent.reconcile.fingerprints import rollout_key
from agent.reconcile.results import PlanResult
from agent.rollout.decisions import FAILURE, Decision, RolloutRecord
from agent.status.model import AGGREGATE, truncate


class Actor:
    """Applies one plan's decisions with a lane's executor."""

    def __init__(self, store: Any, concurrency: int) -> None:
        self.store = store
        self.concurrency = concurrency

    def apply(
        self, result: PlanResult, decided: Decided, executor: Executor, now: datetime
    ) -> tuple[dict[str, str], dict[str, BaseException]]:
        """Apply shared changes and act on the decisions ``decided`` holds (already gated), updating them in
        place with the rollouts that failed, and remember them. Returns the errors for the aggregate status
        and the services a transient error stopped before they were applied."""
        if result.error:
            return {AGGREGATE: result.error}, {}
        decisions = decided.decisions
        errors: dict[str, str] = {}
        shared = [c for c in result.plan.changes if c.kind in ("Cluster", "CapacityProvider")]
        if any(c.changes_anything for c in shared):
            try:
                executor.execute(result.plan, only=[change_key(c) for c in shared])
            except AwsPermanentError as e:
                errors[AGGREGATE] = truncate(f"cluster or capacity provider change failed: {e}")
        register = _registrar(result, executor)
        if not errors:
            errors.update(_register_standalone(result, register))
        acting = sorted(n for n, d in decisions.items() if d.actions)
        held = set(acting) if errors else set()  # a shared change failed: no service acts this tick
        step = Step(executor, register, now)

        def act(name: str) -> Decision | None:
            chosen = decided.chosen[name]
            return chosen.engine.act(decided.tick, chosen.subject, chosen.observation, decisions[name], step)

        unfinished: dict[str, BaseException] = {}
        for name, outcome in self._in_parallel([] if errors else acting, act).items():
            if isinstance(outcome, AwsPermanentError):
                decisions[name] = _failed(decisions[name], decided.tick.sha, now, truncate(str(outcome)))
            elif isinstance(outcome, Decision):
                decisions[name] = outcome
            elif isinstance(outcome, BaseException):
                unfinished[name] = outcome
        for name in sorted(decisions):
            record = decisions[name].record
            if name in unfinished or name in held or self.store is None or record is None:
                continue
            value = record.to_json()
            if value != decided.stored.get(name):  # a record the tick read back unchanged is not rewritten
                self.store.put(rollout_key(result.desired.services[name]), value)
        return errors, unfinished

    def _in_parallel(self, items: Iterable[str], work: Callable[[str], Any]) -> dict[str, Any]:
        """``work(item)`` for each item, ``concurrency`` at a time: item -> its result or the exception."""
        items = list(items)

        def run(item: str) -> Any:
            try:
                return work(item)
            except Exception as e:  # returned, not raised: the other items go on
                return e

        if self.concurrency <= 1 or len(items) <= 1:
            return {item: run(item) for item in items}
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="rollout") as pool:
            return dict(zip(items, pool.map(run, items), strict=True))


def _registrar(result: PlanResult, executor: Executor) -> Callable[[str], Applied]:
    """``register(family)``: the plan's new revision of ``family``, registered once however many services
    (in however many threads) ask for it; the others wait for the first and share its outcome."""
    locks = {family: threading.Lock() for family in result.desired.task_definitions}
    registered: dict[str, Applied | Exception] = {}
    guard = threading.Lock()

    def register(family: str) -> Applied:
        with guard:
            lock = locks.setdefault(family, threading.Lock())
        with lock:
            if family not in registered:
                try:
                    registered[family] = executor.execute(result.plan, only=[f"TaskDefinition/{family}"])
                except Exception as e:
                    registered[family] = e
        outcome = registered[family]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return register


def _register_standalone(result: PlanResult, register: Callable[[str], Applied]) -> dict[str, str]:
    """Register the new revisions of the families no Service runs (a task definition kept in Git for
    RunTask or a scheduled task is managed like any other). Returns the aggregate error, if AWS refused."""
    used = set(result.desired.service_task_family.values())
    families = sorted(
        c.name for c in result.plan.changes if c.kind == "TaskDefinition" and c.action == REGISTER
    )
    for family in families:
        if family in used:
            continue
        try:
            register(family)
        except AwsPermanentError as e:
            return {AGGREGATE: truncate(f"registering task definition {family} failed: {e}")}
    return {}


def _failed(decision: Decision, sha: str, now: datetime, reason: str) -> Decision:
    """A decision whose actions AWS refused for good: failure, and the same content is not tried again."""
    record = decision.record
    if record is None:
        record = RolloutRecord(sha, "", "failed", now.isoformat(), reason=reason)
    else:
        record = replace(record, result="failed", reason=reason)
    return Decision((), record, FAILURE, reason, other_commits=decision.other_commits)
