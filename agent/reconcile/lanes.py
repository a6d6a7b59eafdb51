"""Account lanes: with ``accounts`` each account and region is planned and applied in a lane of its own.

A lane has its own clients, resolver, observer, executor and engines; the agent's own account is the home
lane. The commit still rolls out as one: every lane is planned with the order of all the services (waves
and ``dependsOn`` may cross accounts), then every engine decides, then one ordering gate runs over all the
services, then each lane applies its share. An account that cannot be read (AssumeRole refused, access
denied) is a part with an ``error``; the other accounts go on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import structlog

from agent.aws.accounts import Lane, aws_for, split_desired
from agent.aws.clients import Aws
from agent.aws.pacing import Pacer
from agent.engines import Engines
from agent.engines.hooks import DEFAULT_SECRET_ENV, HookCaller
from agent.errors import InvalidInput, PermanentError
from agent.manifests.model import Desired
from agent.plan.drift import mark_drift
from agent.plan.model import REGISTER, Plan
from agent.plan.observed import Observed
from agent.plan.ordering import ordering_of
from agent.plan.planning import build_plan
from agent.reconcile.drift import settled
from agent.reconcile.fingerprints import rollout_records
from agent.reconcile.prune import Pruner
from agent.reconcile.results import PlanResult

log = structlog.get_logger()


class Lanes:
    """The home lane and one lane per configured account, opened on first use, each with its engines."""

    def __init__(self, aws: Aws, config: Any, store: Any, pacer: Pacer, accounts: list[Any]) -> None:
        self.aws = aws
        self.config = config
        self.store = store
        self.accounts = accounts
        self.checkpoint: Callable[[], None] = lambda: None  # each lane's observer calls it between reads
        self.home = self._kept(Lane.open(None, aws, pacer))
        self._lanes: dict[str, Lane] = {}
        self._engines: dict[str | None, Engines] = {}

    def lane(self, account: Any) -> Lane:
        if account.name not in self._lanes:
            aws = aws_for(self.aws, account)
            self._lanes[account.name] = self._kept(Lane.open(account, aws, Pacer.from_config(self.config)))
        return self._lanes[account.name]

    def _kept(self, lane: Lane) -> Lane:
        """The lane, its revision index kept in the store (scoped by account and region), its observer
        calling ``checkpoint`` between reads."""
        lane.observer.checkpoint = lambda: self.checkpoint()
        if self.store is not None:
            name = lane.account.name if lane.account is not None else "home"
            lane.observer.index.keep_in(self.store, f"{name}@{lane.aws.region}")
        return lane

    def intend(self, parts: list[PlanResult]) -> None:
        """Tell each lane's revision index which families its plan registers, before anything is applied."""
        for part in parts:
            families = [
                c.name for c in part.plan.changes if c.kind == "TaskDefinition" and c.action == REGISTER
            ]
            if families:
                self.of(part).observer.intend(families)

    def save(self) -> None:
        """Store what each lane's revision index learnt (the revisions just registered)."""
        for lane in (self.home, *self._lanes.values()):
            lane.observer.save()

    def of(self, result: PlanResult) -> Lane:
        """The lane a plan was made in (the home lane without ``accounts``)."""
        return result.lane if result.lane is not None else self.home

    def engines(self, lane: Lane) -> Engines:
        """The lane's engines, built from that account's clients, executor and pacer."""
        key = lane.account.name if lane.account is not None else None
        if key not in self._engines:
            hooks = getattr(self.config, "hooks", None)
            secret_env = getattr(hooks, "secret_env", DEFAULT_SECRET_ENV)
            aws = lane.aws
            self._engines[key] = Engines(
                aws=aws,
                executor=lane.executor,
                pacer=lane.observer.pacer,
                store=self.store,
                hooks=HookCaller(secret_env, lambda: aws.client("lambda")),
            )
        return self._engines[key]

    def plan(self, desired: Desired, revision: str | None, pruner: Pruner) -> PlanResult:
        """Plan each account in its own lane; an account that cannot be read is a part with an ``error``.

        Drift and prune are found per lane, each with its own clients.
        """
        order = ordering_of(desired)
        parts = []
        for account, subset in self._split(desired, pruner):
            lane = self.lane(account)
            try:
                resolved = lane.resolver.resolve(subset)
                observed = lane.observer.observe(resolved)
                observed.orphans = pruner.orphans(resolved, lane.observer, lane)
            except InvalidInput:
                raise
            except PermanentError as e:  # AssumeRole refused, access denied: the other accounts go on
                log.error("account.unreadable", account=account.label, error=str(e))
                parts.append(PlanResult(Plan((), revision), subset, Observed(), lane=lane, error=str(e)))
                continue
            plan = build_plan(resolved, observed, revision=revision, order=order, memo=lane.memo)
            records = rollout_records(self.store, resolved)
            plan = mark_drift(plan, settled(resolved, records, self.config))
            parts.append(PlanResult(plan, resolved, observed, lane=lane, records=records))
        changes = tuple(
            dataclasses.replace(c, account=part.lane.account.ref)
            for part in parts
            if part.lane and part.lane.account
            for c in part.plan.changes
        )
        warnings = [w for part in parts for w in part.plan.warnings]
        warnings += [str(w) for w in desired.warnings]
        merged = Plan(changes, revision, tuple(dict.fromkeys(warnings)))
        return PlanResult(merged, desired, Observed(), parts=parts)

    def _split(self, desired: Desired, pruner: Pruner) -> list[tuple[Any, Desired]]:
        """``split_desired``, plus (with ``sync.prune``) an empty part for each account the manifests no
        longer name but the agent has rolled out to: its managed services are pruned too."""
        split = split_desired(desired, self.accounts)
        if not pruner.pruning or self.store is None:
            return split
        placed = {account.name for account, _ in split}
        recorded = pruner.recorded_clusters()
        empty = dataclasses.replace(
            desired,
            clusters={},
            services={},
            capacity_providers={},
            strategies={},
            task_definitions={},
            service_task_family={},
            warnings=[],
        )
        extra = [
            (account, empty)
            for account in self.accounts
            if account.name not in placed and recorded & set(account.clusters)
        ]
        return sorted(split + extra, key=lambda part: self.accounts.index(part[0]))
