"""The loop, read top to bottom: load -> validate -> resolve -> observe -> plan (-> execute, report).

This issue's part is the read-only half that ``validate`` and ``plan`` need; each step is one call and
raises a typed error (agent.errors) that says what happens next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.aws.clients import Aws
from agent.aws.observing import Observer
from agent.aws.resolving import Resolver
from agent.manifests import load_desired
from agent.manifests.model import Desired
from agent.manifests.tree import Tree
from agent.plan.model import Plan
from agent.plan.observed import Observed
from agent.plan.planning import build_plan


@dataclass
class PlanResult:
    """A plan and the inputs it was made from (the executor and the reporter need them)."""

    plan: Plan
    desired: Desired
    observed: Observed


class Reconciler:
    """Holds what lasts across ticks: AWS clients, the task-definition cache, resolved names."""

    def __init__(self, aws: Aws, config: Any = None) -> None:
        self.aws = aws
        self.config = config
        self.resolver = Resolver(aws)
        self.observer = Observer(aws)

    def plan(self, tree: Tree) -> PlanResult:
        desired = load_desired(tree, self.config)  # raises InvalidInput: nothing below runs
        resolved = self.resolver.resolve(desired)  # raises InvalidInput for names that match nothing
        observed = self.observer.observe(resolved)
        warnings = tuple(str(w) for w in getattr(desired, "warnings", ()))
        plan = build_plan(resolved, observed, revision=getattr(tree, "revision", None))
        if warnings:
            plan = Plan(plan.changes, plan.revision, tuple(plan.warnings) + warnings)
        return PlanResult(plan, resolved, observed)
