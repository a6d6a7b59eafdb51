"""The loop, read top to bottom: load -> validate -> resolve -> observe -> plan -> decide -> execute ->
remember -> report.

Level-triggered and idempotent: each tick reads everything it needs, so a crash at any point is healed by
the next tick. Each step is one call and raises a typed error (agent.errors) that says what happens next:
invalid input stops the tick before any AWS write and becomes a failure status; a transient error is
retried by the next tick; a rollout in progress asks to be woken at ``wake_at``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from agent.aws.clients import Aws
from agent.aws.errors import AwsPermanentError
from agent.aws.executing import Executor, change_key
from agent.aws.observing import Observer
from agent.aws.pacing import Pacer
from agent.aws.resolving import Resolver
from agent.errors import InvalidInput, Problem
from agent.manifests import load_desired
from agent.manifests.model import Desired, Manifest
from agent.manifests.tree import Tree
from agent.plan.model import NO_CHANGE, REGISTER, Change, Plan
from agent.plan.observed import Observed
from agent.plan.planning import build_plan
from agent.plan.taskdefs import content_hash, family_revision
from agent.rollout import rolling
from agent.rollout.decisions import APPLY, ERROR, FAILURE, PENDING, SUCCESS, Decision, RolloutRecord
from agent.status.model import AGGREGATE, CommitStatus, service_context, truncate

log = structlog.get_logger()


@dataclass
class PlanResult:
    """A plan and the inputs it was made from (the executor and the reporter need them)."""

    plan: Plan
    desired: Desired
    observed: Observed


@dataclass
class TickResult:
    """What one tick did, for the scheduler (``wake_at``), the CLI and the tests."""

    sha: str | None
    outcome: str  # "invalid" | "unchanged" | "applied" | "rolling" | "failed"
    statuses: dict[str, CommitStatus] = field(default_factory=dict)
    wake_at: datetime | None = None
    plan: Plan | None = None
    problems: list[Problem] = field(default_factory=list)


class Reconciler:
    """Holds what lasts across ticks: AWS clients, the task-definition cache, resolved names, the store."""

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
        self.outbox = outbox
        self.clock = clock
        self.resolver = Resolver(aws)
        self.observer = Observer(aws)
        self.executor = Executor(aws, pacer)

    # -- the read-only half: validate and plan ---------------------------------------------------------

    def plan(self, tree: Tree) -> PlanResult:
        desired = load_desired(tree, self.config)  # raises InvalidInput: nothing below runs
        resolved = self.resolver.resolve(desired)  # raises InvalidInput for names that match nothing
        observed = self.observer.observe(resolved)
        plan = build_plan(resolved, observed, revision=getattr(tree, "revision", None))
        warnings = tuple(str(w) for w in desired.warnings)
        if warnings:
            plan = Plan(plan.changes, plan.revision, tuple(plan.warnings) + warnings)
        return PlanResult(plan, resolved, observed)

    # -- one tick of the GitOps loop -------------------------------------------------------------------

    def tick(self, tree: Tree, sha: str) -> TickResult:
        """Reconcile ECS with the manifests at ``sha`` and report on that commit."""
        now = self.clock()
        bound = log.bind(sha=sha[:12])
        try:
            result = self.plan(tree)
        except InvalidInput as e:
            return self._invalid(sha, e.problems)

        decisions = self._decide(result, sha, now)
        shared = [c for c in result.plan.changes if c.kind in ("Cluster", "CapacityProvider")]
        errors: dict[str, str] = {}
        if any(c.changes_anything for c in shared):
            try:
                self.executor.execute(result.plan, only=[change_key(c) for c in shared])
            except AwsPermanentError as e:
                errors[AGGREGATE] = truncate(f"cluster or capacity provider change failed: {e}")
        for name, decision in sorted(decisions.items()):
            if APPLY in decision.actions and AGGREGATE not in errors:
                keys = self._service_changes(result, name)
                bound.info("rollout.apply", service=name, changes=keys)
                try:
                    self.executor.execute(result.plan, only=keys)
                except AwsPermanentError as e:
                    failed = RolloutRecord(
                        sha,
                        decision.record.fingerprint if decision.record else "",
                        "failed",
                        now.isoformat(),
                        reason=truncate(str(e)),
                    )
                    decisions[name] = Decision((), failed, FAILURE, failed.reason)
            self._remember(result.desired.services[name], decisions[name].record)

        statuses = self._statuses(result.desired, decisions, errors, sha)
        self._report(statuses)
        wakes = [d.wake_at for d in decisions.values() if d.wake_at]
        outcome = _outcome(decisions, errors)
        bound.info("tick.done", outcome=outcome, changes=result.plan.has_changes)
        return TickResult(sha, outcome, statuses, min(wakes) if wakes else None, result.plan)

    # -- steps -----------------------------------------------------------------------------------------

    def _invalid(self, sha: str, problems: list[Problem]) -> TickResult:
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0] if errors else Problem("", "", "invalid manifests")
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        status = CommitStatus(sha, AGGREGATE, FAILURE, truncate(f"invalid: {first}{more}"))
        log.warning("manifests.invalid", sha=sha[:12], problems=[str(p) for p in errors])
        self._report({AGGREGATE: status})
        return TickResult(sha, "invalid", {AGGREGATE: status}, problems=problems)

    def _decide(self, result: PlanResult, sha: str, now: datetime) -> dict[str, Decision]:
        by_key = {(c.kind, c.name): c for c in result.plan.changes}
        decisions = {}
        for name, manifest in result.desired.services.items():
            cluster, service = manifest.spec["cluster"], manifest.spec.get("serviceName", name)
            family = result.desired.service_task_family.get(name)
            svc_change = by_key.get(("Service", f"{cluster}/{service}"))
            td_change = by_key.get(("TaskDefinition", family)) if family else None
            in_sync = all(
                c is None or (c.action == NO_CHANGE and not c.fields) for c in (svc_change, td_change)
            )
            observed = result.observed.services.get((cluster, service))
            obs = rolling.Observation(
                in_sync=in_sync,
                fingerprint=self._fingerprint(result.desired, manifest),
                target=_target(td_change, family),
                deployments=_deployments(observed),
            )
            decisions[name] = rolling.advance(self._record(manifest), obs, sha, now)
        return decisions

    @staticmethod
    def _service_changes(result: PlanResult, name: str) -> list[str]:
        manifest = result.desired.services[name]
        cluster, service = manifest.spec["cluster"], manifest.spec.get("serviceName", name)
        family = result.desired.service_task_family.get(name)
        return [f"TaskDefinition/{family}", f"Service/{cluster}/{service}"]

    @staticmethod
    def _fingerprint(desired: Desired, manifest: Manifest) -> str:
        """Identifies what Git asks of one service: its spec, its strategy and its task-definition content."""
        family = desired.service_task_family.get(manifest.name)
        td = desired.task_definitions.get(family) if family else None
        strategy = manifest.spec.get("strategy")
        if isinstance(strategy, str) and strategy in desired.strategies:
            strategy = desired.strategies[strategy].spec
        spec = {k: v for k, v in manifest.spec.items() if k != "taskDefinition"}
        text = json.dumps(
            [spec, strategy, content_hash(td.body) if td else None], sort_keys=True, default=str
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _record(self, manifest: Manifest) -> RolloutRecord | None:
        if self.store is None:
            return None
        return RolloutRecord.from_json(self.store.get(_rollout_key(manifest)))

    def _remember(self, manifest: Manifest, record: RolloutRecord | None) -> None:
        if self.store is not None and record is not None:
            self.store.put(_rollout_key(manifest), record.to_json())

    def _statuses(
        self, desired: Desired, decisions: dict[str, Decision], errors: dict[str, str], sha: str
    ) -> dict[str, CommitStatus]:
        out = {}
        for name, d in decisions.items():
            m = desired.services[name]
            ctx = service_context(m.spec["cluster"], m.spec.get("serviceName", name))
            out[ctx] = CommitStatus(sha, ctx, d.state, d.description)
        out[AGGREGATE] = _aggregate(sha, decisions, errors)
        return out

    def _report(self, statuses: dict[str, CommitStatus]) -> None:
        """Queue statuses that differ from what was last written for that commit and context; flush."""
        now = self.clock()
        for ctx, status in statuses.items():
            status = status.stamped(now)
            key = f"status/{status.sha}/{ctx}"
            last = self.store.get(key) if self.store is not None else None
            current = {"state": status.state, "description": status.description}
            if last == current:
                continue
            if self.store is not None:
                self.store.put(key, current)
            if self.outbox is not None:
                self.outbox.put(status)
        if self.outbox is not None:
            self.outbox.flush()


def _rollout_key(manifest: Manifest) -> str:
    return f"rollout/{manifest.spec['cluster']}/{manifest.spec.get('serviceName', manifest.name)}"


def _target(td_change: Change | None, family: str | None) -> str | None:
    if td_change is None:
        return None
    if td_change.action == REGISTER:
        return f"{family}:(new)"
    arn = td_change.request.get("taskDefinitionArn")
    return family_revision(arn) if arn else None


def _deployments(service: dict[str, Any] | None) -> tuple[rolling.Deployment, ...]:
    """ECS deployments, or for the EXTERNAL controller its task sets seen as deployments."""
    if not service:
        return ()
    if (service.get("deploymentController") or {}).get("type") == "EXTERNAL":
        return tuple(
            rolling.Deployment(
                "PRIMARY" if ts.get("status") == "PRIMARY" else "ACTIVE",
                family_revision(ts.get("taskDefinition", "")),
                "COMPLETED" if ts.get("stabilityStatus") == "STEADY_STATE" else "IN_PROGRESS",
                "",
                int(ts.get("runningCount", 0)),
                int(ts.get("computedDesiredCount", 0)),
            )
            for ts in service.get("taskSets") or ()
        )
    return tuple(
        rolling.Deployment(
            d.get("status", ""),
            family_revision(d.get("taskDefinition", "")),
            d.get("rolloutState"),
            d.get("rolloutStateReason", ""),
            int(d.get("runningCount", 0)),
            int(d.get("desiredCount", 0)),
        )
        for d in service.get("deployments") or ()
    )


def _aggregate(sha: str, decisions: dict[str, Decision], errors: dict[str, str]) -> CommitStatus:
    if AGGREGATE in errors:
        return CommitStatus(sha, AGGREGATE, ERROR, errors[AGGREGATE])
    by_state: dict[str, list[str]] = {}
    for name, d in sorted(decisions.items()):
        by_state.setdefault(d.state, []).append(name)
    if FAILURE in by_state:
        names = by_state[FAILURE]
        return CommitStatus(sha, AGGREGATE, FAILURE, truncate(f"{len(names)} failed: {', '.join(names)}"))
    if PENDING in by_state:
        names = by_state[PENDING]
        return CommitStatus(
            sha, AGGREGATE, PENDING, truncate(f"rolling out {len(names)}: {', '.join(names)}")
        )
    return CommitStatus(sha, AGGREGATE, SUCCESS, f"{len(decisions)} services deployed")


def _outcome(decisions: dict[str, Decision], errors: dict[str, str]) -> str:
    states = {d.state for d in decisions.values()}
    if errors or FAILURE in states:
        return "failed"
    if any(APPLY in d.actions for d in decisions.values()):
        return "applied"
    return "rolling" if PENDING in states else "unchanged"
