"""The loop, read top to bottom: load -> validate -> resolve -> observe -> plan -> decide -> execute ->
remember -> report.

Level-triggered and idempotent: each tick reads everything it needs, so a crash at any point is healed by
the next tick. Each step is one call and raises a typed error (agent.errors) that says what happens next:
invalid input stops the tick before any AWS write and becomes a failure status; a transient error is
retried by the next tick; a rollout in progress asks to be woken at ``wake_at``.

One engine decides for each service:

* **rolling** (``rolling`` strategies, and creating an ``engine: agent`` service) answers APPLY: execute
  the service's part of the plan; the service's windows hold that APPLY while a freeze window is open or
  no maintenance window is (``hold_for_windows``);
* **ecs** (``engine: ecs`` blueGreen / linear / canary; agent/engines_ecs.py) follows the native service
  deployment: APPLY starts it at once (a freeze holds that), then StopServiceDeployment /
  ContinueServiceDeployment (``_act``); production traffic waits for a maintenance window at the PAUSE
  hook;
* **agent** (``engine: agent`` services that already run a PRIMARY task set; agent/engines.py) answers a
  list of actions: task sets, listener weights, hooks. It also winds its rollout down for a service whose
  manifest moved to another engine (``hands_back``), so that the controller switch can be applied.

Statuses come from the decisions, made before anything ran; statuses on other commits (the one a newer
commit superseded) come from ``Decision.other_commits`` and are returned as ``TickResult.other_statuses``.

Services are rolled out in parallel (``pacing.concurrency`` at once, 8 by default): every new
task-definition revision the services need is registered once per family, and each service is updated
or carries out its agent-engine actions. All threads share one Pacer, so together they stay within ECS's
rate limits.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from agent.aws.clients import Aws
from agent.aws.errors import AwsPermanentError
from agent.aws.executing import Applied, Executor, change_key
from agent.aws.observing import Observer
from agent.aws.pacing import DEFAULT_CONCURRENCY, Pacer
from agent.aws.resolving import Resolver
from agent.engines import AgentEngine, Rollout, gate_of, hands_back, hold_for_windows, takes
from agent.engines_ecs import EcsEngine
from agent.errors import InvalidInput, Problem
from agent.hooks import DEFAULT_SECRET_ENV, HookCaller
from agent.manifests import load_desired
from agent.manifests.model import Desired, Manifest
from agent.manifests.tree import Tree
from agent.plan.model import CREATE, NO_CHANGE, REGISTER, Change, Plan
from agent.plan.observed import Observed
from agent.plan.planning import build_plan
from agent.plan.services import engine_of, resolve_strategy, switch_blocker
from agent.plan.taskdefs import content_hash, family_revision
from agent.rollout import rolling
from agent.rollout.decisions import APPLY, ERROR, FAILURE, PENDING, SUCCESS, Decision, RolloutRecord
from agent.status.model import AGGREGATE, CommitStatus, service_context, truncate

log = structlog.get_logger()
SWITCH_POLL = timedelta(seconds=30)  # how often a controller switch waiting for one task set looks again


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
    # Statuses written on other commits (the commit a newer one superseded), by (sha, context).
    other_statuses: dict[tuple[str, str], CommitStatus] = field(default_factory=dict)


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
        self.pacer = pacer or Pacer.from_config(config)
        pacing = getattr(config, "pacing", None)
        self.concurrency = max(1, int(getattr(pacing, "concurrency", DEFAULT_CONCURRENCY)))
        self.resolver = Resolver(aws)
        self.observer = Observer(aws, self.pacer)
        self.executor = Executor(aws, self.pacer, on_registered=self.observer.remember)
        hooks = getattr(config, "hooks", None)
        self.engine = AgentEngine(
            aws,
            self.executor,
            store,
            HookCaller(getattr(hooks, "secret_env", DEFAULT_SECRET_ENV), lambda: aws.client("lambda")),
        )
        self.ecs_engine = EcsEngine(aws, self.pacer)

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

        rollouts = self._decide_agent(result, sha, now)  # agent engine: task sets and listener weights
        decisions = self._decide(result, sha, now, skip=rollouts)  # rolling and ecs engines
        decisions.update({name: r.decision for name, r in rollouts.items() if r.decision is not None})
        errors = self._apply_shared(result)
        acting = sorted(n for n, d in decisions.items() if d.actions)
        held = set(acting) if errors else set()  # a cluster change failed: no service acts this tick
        applying = [n for n in acting if n in rollouts or APPLY in decisions[n].actions]
        failed, unfinished = self._roll_out(result, [] if errors else applying, rollouts, bound, now)
        if not errors:
            self._act(decisions, rollouts, bound)  # the ecs engine's stop / continue calls
        for name, reason in failed.items():
            decisions[name] = _failed(decisions[name], sha, now, reason)
        for name in sorted(decisions):
            if name not in unfinished and name not in held:
                self._remember(result.desired.services[name], decisions[name].record)
        if unfinished:  # a transient error: what was applied is remembered, the rest is retried next tick
            raise next(iter(unfinished.values()))

        statuses = self._statuses(result.desired, decisions, errors, sha)
        others = _other_statuses(result.desired, decisions)
        self._report([*statuses.values(), *others.values()])
        wakes = [d.wake_at for d in decisions.values() if d.wake_at]
        outcome = _outcome(decisions, errors)
        bound.info("tick.done", outcome=outcome, changes=result.plan.has_changes)
        wake_at = min(wakes) if wakes else None
        return TickResult(sha, outcome, statuses, wake_at, result.plan, other_statuses=others)

    # -- steps -----------------------------------------------------------------------------------------

    def _invalid(self, sha: str, problems: list[Problem]) -> TickResult:
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0] if errors else Problem("", "", "invalid manifests")
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        status = CommitStatus(sha, AGGREGATE, FAILURE, truncate(f"invalid: {first}{more}"))
        log.warning("manifests.invalid", sha=sha[:12], problems=[str(p) for p in errors])
        self._report([status])
        return TickResult(sha, "invalid", {AGGREGATE: status}, problems=problems)

    def _decide_agent(self, result: PlanResult, sha: str, now: datetime) -> dict[str, Rollout]:
        """The agent engine's decisions for the services it drives, or winds down before they switch engine
        (observed together, in batches)."""
        desired, observed = result.desired, result.observed
        names = sorted(
            n
            for n, m in desired.services.items()
            if takes(m, desired, observed) or hands_back(m, desired, observed)
        )
        if not names:
            return {}
        fingerprints = {n: self._fingerprint(desired, desired.services[n]) for n in names}
        return self.engine.decide(result.plan, desired, observed, names, fingerprints, sha, now)

    def _decide(
        self, result: PlanResult, sha: str, now: datetime, skip: Iterable[str] = ()
    ) -> dict[str, Decision]:
        """The rolling or ecs engine's decision for every service not in ``skip``: a rolling APPLY is held by
        the service's windows, the ecs engine applies its windows itself (agent.rollout.native)."""
        by_key = {(c.kind, c.name): c for c in result.plan.changes}
        decisions = {}
        for name, manifest in result.desired.services.items():
            if name in skip:
                continue
            cluster, service = manifest.spec["cluster"], manifest.spec.get("serviceName", name)
            family = result.desired.service_task_family.get(name)
            svc_change = by_key.get(("Service", f"{cluster}/{service}"))
            td_change = by_key.get(("TaskDefinition", family)) if family else None
            in_sync = all(
                c is None or (c.action == NO_CHANGE and not c.fields) for c in (svc_change, td_change)
            )
            observed = result.observed.services.get((cluster, service))
            strategy = resolve_strategy(manifest.spec.get("strategy"), result.desired.strategies)
            blocked = switch_blocker(observed, strategy)
            if blocked is not None:  # a deployment-controller switch that cannot be applied (yet)
                state, reason = blocked
                wake = now + SWITCH_POLL if state == PENDING else None
                decisions[name] = Decision((), None, state, truncate(reason), wake)
                continue
            if engine_of(strategy) == "ecs":
                decisions[name] = self.ecs_engine.decide(
                    self._stored(manifest),
                    manifest,
                    result.desired,
                    observed,
                    in_sync=in_sync,
                    fingerprint=self._fingerprint(result.desired, manifest),
                    target=_target(td_change, family),
                    sha=sha,
                    now=now,
                )
                continue
            obs = rolling.Observation(
                in_sync=in_sync,
                fingerprint=self._fingerprint(result.desired, manifest),
                target=_target(td_change, family),
                deployments=_deployments(observed),
                events=tuple(e.get("message", "") for e in (observed or {}).get("events", ())[:20]),
            )
            record = self._record(manifest)
            decision = rolling.advance(record, obs, sha, now)
            if APPLY in decision.actions:
                creating = svc_change is not None and svc_change.action == CREATE
                gate = gate_of(manifest, result.desired, now)
                decision = hold_for_windows(decision, record, gate, creating)
            decisions[name] = decision
        return decisions

    def _apply_shared(self, result: PlanResult) -> dict[str, str]:
        """Clusters and capacity providers, before any service; a failure stops every service this tick."""
        shared = [c for c in result.plan.changes if c.kind in ("Cluster", "CapacityProvider")]
        if any(c.changes_anything for c in shared):
            try:
                self.executor.execute(result.plan, only=[change_key(c) for c in shared])
            except AwsPermanentError as e:
                return {AGGREGATE: truncate(f"cluster or capacity provider change failed: {e}")}
        return {}

    def _roll_out(
        self,
        result: PlanResult,
        names: list[str],
        rollouts: dict[str, Rollout],
        bound: Any,
        now: datetime,
    ) -> tuple[dict[str, str], dict[str, BaseException]]:
        """Carry out the decisions of services ``names``, ``concurrency`` at once.

        A rolling-engine service registers its family's new revision if no other service has yet (several
        services may share a family: the first registers, the others wait for it and use its ARN), then is
        updated; an agent-engine service carries out its actions (``Register`` the same way). So
        registrations, paced at 1 per second past their burst, and updates overlap. Returns (service ->
        reason it failed for good, service -> error that stopped it before it was applied).
        """
        locks = {family: threading.Lock() for family in result.desired.task_definitions}
        registered: dict[str, Applied | Exception] = {}

        def register(family: str) -> Applied:
            with locks.setdefault(family, threading.Lock()):
                if family not in registered:
                    try:
                        registered[family] = self.executor.execute(
                            result.plan, only=[f"TaskDefinition/{family}"]
                        )
                    except Exception as e:
                        registered[family] = e
            outcome = registered[family]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome

        def apply(name: str) -> Applied:
            if name in rollouts:
                return self.engine.carry_out(rollouts[name], result.plan, register, now)
            family, service = self._service_changes(result, name)
            outcome = register(family)
            manifest = result.desired.services[name]
            strategy = resolve_strategy(manifest.spec.get("strategy"), result.desired.strategies)
            bound.info("rollout.apply", service=name, engine=engine_of(strategy), changes=[family, service])
            return self.executor.execute(result.plan, only=[service], registered=outcome.task_definitions)

        failed: dict[str, str] = {}
        unfinished: dict[str, BaseException] = {}
        for name, outcome in self._in_parallel(names, apply).items():
            if isinstance(outcome, AwsPermanentError):
                failed[name] = truncate(str(outcome))
            elif not isinstance(outcome, Applied):
                unfinished[name] = outcome
        return failed, unfinished

    def _in_parallel(self, items: Iterable[str], work: Callable[[str], Applied]) -> dict[str, Any]:
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

    @staticmethod
    def _service_changes(result: PlanResult, name: str) -> tuple[str, str]:
        """(task-definition family, ``Service/<cluster>/<service>`` change key) of a service."""
        manifest = result.desired.services[name]
        cluster, service = manifest.spec["cluster"], manifest.spec.get("serviceName", name)
        family = result.desired.service_task_family.get(name)
        return str(family), f"Service/{cluster}/{service}"

    @staticmethod
    def _fingerprint(desired: Desired, manifest: Manifest) -> str:
        """Identifies what Git asks of one service: its spec, its strategy and its task-definition content."""
        family = desired.service_task_family.get(manifest.name)
        td = desired.task_definitions.get(family) if family else None
        strategy = resolve_strategy(manifest.spec.get("strategy"), desired.strategies)
        spec = {k: v for k, v in manifest.spec.items() if k != "taskDefinition"}
        text = json.dumps(
            [spec, strategy, content_hash(td.body) if td else None], sort_keys=True, default=str
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _stored(self, manifest: Manifest) -> dict[str, Any] | None:
        return self.store.get(_rollout_key(manifest)) if self.store is not None else None

    def _record(self, manifest: Manifest) -> RolloutRecord | None:
        return rollout_record(self._stored(manifest))

    def _act(self, decisions: dict[str, Decision], rollouts: dict[str, Rollout], bound: Any) -> None:
        """The ecs engine's calls other than APPLY (stop, continue). One AWS refuses is reported on the
        commit; the record is kept, so the next tick reads the deployment again and retries."""
        for name, decision in sorted(decisions.items()):
            if name not in rollouts and any(a != APPLY for a in decision.actions):
                try:
                    self.ecs_engine.act(name, decision)
                except AwsPermanentError as e:
                    bound.warning("deployment.action_failed", service=name, error=str(e))
                    reason = truncate(str(e))
                    decisions[name] = Decision(
                        (), decision.record, FAILURE, reason, decision.wake_at, decision.other_commits
                    )

    def _remember(self, manifest: Manifest, record: Any) -> None:
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

    def _report(self, statuses: Iterable[CommitStatus]) -> None:
        """Queue statuses that differ from what was last written for that commit and context; flush."""
        now = self.clock()
        for status in statuses:
            status = status.stamped(now)
            key = f"status/{status.sha}/{status.context}"
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


def rollout_record(data: dict[str, Any] | None) -> RolloutRecord | None:
    """A stored rollout record as the rolling engine reads it (keys it does not know dropped)."""
    return RolloutRecord.from_json(data)


def _failed(decision: Decision, sha: str, now: datetime, reason: str) -> Decision:
    """A decision whose actions AWS refused for good: failure, and the same content is not tried again."""
    record = decision.record
    if record is None:
        record = RolloutRecord(sha, "", "failed", now.isoformat(), reason=reason)
    else:
        record = replace(record, result="failed", reason=reason)
    return Decision((), record, FAILURE, reason, other_commits=decision.other_commits)


def _other_statuses(desired: Desired, decisions: dict[str, Decision]) -> dict[tuple[str, str], CommitStatus]:
    """Statuses the engines asked for on other commits (a superseded one), with an aggregate for each."""
    out: dict[tuple[str, str], CommitStatus] = {}
    by_sha: dict[str, dict[str, Decision]] = {}
    for name, decision in sorted(decisions.items()):
        m = desired.services[name]
        ctx = service_context(m.spec["cluster"], m.spec.get("serviceName", name))
        for sha, state, description in decision.other_commits:
            out[(sha, ctx)] = CommitStatus(sha, ctx, state, truncate(description))
            by_sha.setdefault(sha, {})[name] = Decision((), None, state, description)
    for sha, theirs in by_sha.items():
        out[(sha, AGGREGATE)] = _aggregate(sha, theirs, {})
    return out


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
    if any(d.actions for d in decisions.values()):
        return "applied"
    return "rolling" if PENDING in states else "unchanged"
