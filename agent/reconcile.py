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

Beyond applying Git (issue 9): a service whose content already rolled out but no longer matches ECS has
*drifted*; it is corrected (``selfHeal``) or reported (failure status, log, metric). Rollouts wait for
what they depend on (``dependsOn``, waves: ``agent.rollout.ordering.gate``). With ``sync.prune``,
managed services no manifest names any more are deleted once the rest of the commit has rolled out.

With ``accounts`` (agent/aws/accounts.py) each account is planned and applied in its own lane, with its
own clients, but the commit rolls out as one: every engine decides first, then one ``gate`` over all the
services holds back those whose dependencies (in any account) have not rolled out, then each lane applies
its share. Drift and prune are found in each lane, with that account's clients and clusters. The agent
and ecs engines run in each lane too (their observations, task sets, listener weights, Lambda hooks and
service-deployment calls use that account's clients); the ordering gate holds an agent-engine decision
that would start a rollout as it holds an APPLY, and never the ecs engine's stop or continue of a
deployment already in flight.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from agent.aws.accounts import Lane, account_of_service, accounts_of, aws_for, split_desired
from agent.aws.clients import Aws
from agent.aws.errors import AwsPermanentError
from agent.aws.executing import Applied, Executor, change_key
from agent.aws.observing import Observer
from agent.aws.pacing import DEFAULT_CONCURRENCY, Pacer
from agent.aws.resolving import Resolver
from agent.engines import AgentEngine, Rollout, gate_of, hands_back, hold_for_windows, takes
from agent.engines_ecs import EcsEngine
from agent.errors import InvalidInput, PermanentError, Problem
from agent.hooks import DEFAULT_SECRET_ENV, HookCaller
from agent.manifests import load_desired
from agent.manifests.model import Desired, Manifest
from agent.manifests.tree import Tree
from agent.plan.drift import describe as describe_drift
from agent.plan.drift import mark_drift
from agent.plan.model import CREATE, DELETE, DRIFT_HEAL, NO_CHANGE, REGISTER, Change, Plan
from agent.plan.observed import Observed
from agent.plan.ordering import ordering
from agent.plan.planning import build_plan
from agent.plan.services import engine_of, resolve_strategy, switch_blocker
from agent.plan.taskdefs import content_hash, family_revision
from agent.rollout import rolling
from agent.rollout.decisions import APPLY, ERROR, FAILURE, PENDING, SUCCESS, Decision, RolloutRecord
from agent.rollout.ordering import gate
from agent.rollout.progressive import IN_PROGRESS, CreateTaskSet
from agent.rollout.progressive import Register as RegisterAction
from agent.status.model import AGGREGATE, MAX_DESCRIPTION, CommitStatus, service_context, truncate

log = structlog.get_logger()
SWITCH_POLL = timedelta(seconds=30)  # how often a controller switch waiting for one task set looks again

# Service spec fields that are not part of what ECS runs (see Reconciler._fingerprint).
_AGENT_ONLY_FIELDS = ("taskDefinition", "dependsOn", "wave", "selfHeal")


@dataclass
class PlanResult:
    """A plan and the inputs it was made from (the executor and the reporter need them).

    With ``accounts`` in the agent config, ``plan`` holds every account's changes (each naming its
    account) and ``desired`` the whole commit; ``parts`` holds one PlanResult per account, planned in its
    ``lane``, which is what the loop executes. ``error`` is why a part's account could not be read.
    """

    plan: Plan
    desired: Desired
    observed: Observed
    parts: list[PlanResult] = field(default_factory=list)
    lane: Lane | None = None
    error: str = ""

    @property
    def errors(self) -> list[str]:
        """Why some accounts could not be planned (AssumeRole refused, say); the others were."""
        return [
            f"{p.lane.account.label}: {p.error}" for p in self.parts if p.error and p.lane and p.lane.account
        ]


@dataclass
class TickResult:
    """What one tick did, for the scheduler (``wake_at``), the CLI and the tests."""

    sha: str | None
    outcome: str  # "invalid" | "untrusted" | "unchanged" | "applied" | "rolling" | "failed" | "drifted"
    statuses: dict[str, CommitStatus] = field(default_factory=dict)
    wake_at: datetime | None = None
    plan: Plan | None = None
    problems: list[Problem] = field(default_factory=list)
    drifted: tuple[str, ...] = ()  # "cluster/service" of services found drifted on this tick
    pruned: tuple[str, ...] = ()  # "cluster/service" of services deleted on this tick
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
        self.engine = self._new_engine(aws, self.executor)
        self.ecs_engine = EcsEngine(aws, self.pacer)
        # Several accounts and regions (agent/aws/accounts.py): one lane each, opened on first use, with
        # its own engines (account name -> engine).
        self._engines: dict[str, AgentEngine] = {}
        self._ecs_engines: dict[str, EcsEngine] = {}
        self.accounts = accounts_of(config, aws.region)
        self._lanes: dict[str, Lane] = {}

    def _new_engine(self, aws: Aws, executor: Executor) -> AgentEngine:
        hooks = getattr(self.config, "hooks", None)
        secret_env = getattr(hooks, "secret_env", DEFAULT_SECRET_ENV)
        return AgentEngine(aws, executor, self.store, HookCaller(secret_env, lambda: aws.client("lambda")))

    # -- the read-only half: validate and plan ---------------------------------------------------------

    def plan(self, tree: Tree) -> PlanResult:
        desired = load_desired(tree, self.config)  # raises InvalidInput: nothing below runs
        if self.accounts:
            return self._plan_accounts(desired, getattr(tree, "revision", None))
        resolved = self.resolver.resolve(desired)  # raises InvalidInput for names that match nothing
        observed = self.observer.observe(resolved)
        observed.orphans = self._orphans(resolved, None)
        plan = build_plan(resolved, observed, revision=getattr(tree, "revision", None))
        warnings = tuple(str(w) for w in desired.warnings)
        if warnings:
            plan = Plan(plan.changes, plan.revision, tuple(plan.warnings) + warnings)
        plan = mark_drift(plan, self._settled(resolved))
        return PlanResult(plan, resolved, observed)

    def _plan_accounts(self, desired: Desired, revision: str | None) -> PlanResult:
        """Plan each account in its own lane; an account that cannot be read is a part with an ``error``.

        The commit rolls out as one: every lane is planned with the order of all its services (waves and
        ``dependsOn`` may cross accounts). Drift and prune are found per lane, each with its own clients.
        """
        order = ordering(desired.services)
        parts = []
        for account, subset in self._split(desired):
            lane = self._lane(account)
            try:
                resolved = lane.resolver.resolve(subset)
                observed = lane.observer.observe(resolved)
                observed.orphans = self._orphans(resolved, lane)
            except InvalidInput:
                raise
            except PermanentError as e:  # AssumeRole refused, access denied: the other accounts go on
                log.error("account.unreadable", account=account.label, error=str(e))
                parts.append(PlanResult(Plan((), revision), subset, Observed(), lane=lane, error=str(e)))
                continue
            plan = build_plan(resolved, observed, revision=revision, order=order)
            plan = mark_drift(plan, self._settled(resolved))
            parts.append(PlanResult(plan, resolved, observed, lane=lane))
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

    def _split(self, desired: Desired) -> list[tuple[Any, Desired]]:
        """``split_desired``, plus (with ``sync.prune``) an empty part for each account the manifests no
        longer name but the agent has rolled out to: its managed services are pruned too."""
        split = split_desired(desired, self.accounts)
        if not self._pruning() or self.store is None:
            return split
        placed = {account.name for account, _ in split}
        recorded = self._recorded_clusters()
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

    def _lane(self, account: Any) -> Lane:
        if account.name not in self._lanes:
            aws = aws_for(self.aws, account)
            self._lanes[account.name] = Lane.open(account, aws, Pacer.from_config(self.config))
        return self._lanes[account.name]

    # -- one tick of the GitOps loop -------------------------------------------------------------------

    def tick(self, tree: Tree, sha: str) -> TickResult:
        """Reconcile ECS with the manifests at ``sha`` and report on that commit."""
        now = self.clock()
        bound = log.bind(sha=sha[:12])
        try:
            result = self.plan(tree)
        except InvalidInput as e:
            return self._invalid(sha, e.problems)

        parts = result.parts or [result]  # one per account and region, or the whole commit
        decisions: dict[str, Decision] = {}
        rollouts: dict[str, Rollout] = {}  # the agent engine's services, with their decisions
        drifted: set[str] = set()
        reported: set[str] = set()
        for part in parts:
            part_decisions, part_rollouts, part_drifted, part_reported = self._decide_part(part, sha, now)
            decisions.update(part_decisions)
            rollouts.update(part_rollouts)
            drifted |= part_drifted
            reported |= part_reported
        # One order for the whole commit: a service waits for what it depends on in any account. An
        # agent-engine decision that starts a rollout waits like an APPLY.
        starting = {n for n, r in rollouts.items() if n in decisions and _starts(r, decisions[n])}
        decisions = gate(decisions, ordering(result.desired.services), running=reported, starting=starting)

        errors: dict[str, str] = {}
        unfinished: dict[str, BaseException] = {}
        for part in parts:
            mine = {name: decisions[name] for name in part.desired.services if name in decisions}
            theirs = {name: r for name, r in rollouts.items() if name in mine}
            part_errors, part_unfinished = self._apply(part, mine, theirs, sha, now, bound)
            decisions.update(mine)
            unfinished.update(part_unfinished)
            if AGGREGATE in part_errors:
                label = f"{part.lane.account.label}: " if part.lane and part.lane.account else ""
                joined = "; ".join(filter(None, [errors.get(AGGREGATE), label + part_errors[AGGREGATE]]))
                errors[AGGREGATE] = truncate(joined)
        if unfinished:  # a transient error: what was applied is remembered, the rest is retried next tick
            raise next(iter(unfinished.values()))

        pruned: dict[str, CommitStatus] = {}
        for part in parts:
            pruned.update(self._prune(part, decisions, errors, reported, sha))
        statuses = self._statuses(result.desired, decisions, errors, sha, reported)
        statuses.update(pruned)
        others = self._other_statuses(result.desired, decisions)
        self._report([*statuses.values(), *others.values()])
        wakes = [d.wake_at for d in decisions.values() if d.wake_at]
        outcome = _outcome(decisions, errors, reported)
        bound.info("tick.done", outcome=outcome, changes=result.plan.has_changes)
        deleted = tuple(s.context.split("/", 1)[1] for s in pruned.values() if s.state == SUCCESS)
        return TickResult(
            sha,
            outcome,
            statuses,
            min(wakes) if wakes else None,
            result.plan,
            drifted=tuple(sorted(drifted)),
            pruned=deleted,
            other_statuses=others,
        )

    # -- steps -----------------------------------------------------------------------------------------

    def _decide_part(
        self, result: PlanResult, sha: str, now: datetime
    ) -> tuple[dict[str, Decision], dict[str, Rollout], set[str], set[str]]:
        """The engines' decisions for one plan (one account's, or the commit's), drift applied: the
        decisions, the agent engine's rollouts (in this plan's lane), the drifted services
        ("cluster/service") and the ones only reported (see ``_drift``)."""
        if result.error:  # the account could not be read: nothing is applied there
            decisions = {
                name: Decision((), self._record(m), ERROR, truncate(result.error))
                for name, m in result.desired.services.items()
            }
            return decisions, {}, set(), set()
        rollouts = self._decide_agent(result, sha, now)  # agent engine: task sets and listener weights
        decisions = self._decide(result, sha, now, skip=rollouts)  # rolling and ecs engines
        decisions.update({name: r.decision for name, r in rollouts.items() if r.decision is not None})
        decisions, drifted, reported = self._drift(result, decisions)
        return decisions, rollouts, drifted, reported

    def _decide_agent(self, result: PlanResult, sha: str, now: datetime) -> dict[str, Rollout]:
        """The agent engine's decisions for the services it drives, or winds down before they switch engine
        (observed together, in batches), in the plan's lane."""
        desired, observed = result.desired, result.observed
        names = sorted(
            n
            for n, m in desired.services.items()
            if takes(m, desired, observed) or hands_back(m, desired, observed)
        )
        if not names:
            return {}
        fingerprints = {n: self._fingerprint(desired, desired.services[n]) for n in names}
        return self._engine(result).decide(result.plan, desired, observed, names, fingerprints, sha, now)

    def _apply(
        self,
        result: PlanResult,
        decisions: dict[str, Decision],
        rollouts: dict[str, Rollout],
        sha: str,
        now: datetime,
        bound: Any,
    ) -> tuple[dict[str, str], dict[str, BaseException]]:
        """Apply shared changes and roll out one plan's services (one account's, or the commit's).

        ``decisions`` (this plan's services, already gated) is updated in place with the rollouts that
        failed, and remembered. Returns the errors for the aggregate status and the services a transient
        error stopped before they were applied. An agent-engine service carries out its decision's actions
        (``rollouts``) with this lane's clients.
        """
        if result.error:
            return {AGGREGATE: result.error}, {}
        if result.lane is not None and result.lane.account is not None:
            bound = bound.bind(account=result.lane.account.label)
        errors: dict[str, str] = {}
        shared = [c for c in result.plan.changes if c.kind in ("Cluster", "CapacityProvider")]
        if any(c.changes_anything for c in shared):
            try:
                self._executor(result).execute(result.plan, only=[change_key(c) for c in shared])
            except AwsPermanentError as e:
                errors[AGGREGATE] = truncate(f"cluster or capacity provider change failed: {e}")
        acting = sorted(n for n, d in decisions.items() if d.actions)
        held = set(acting) if errors else set()  # a cluster change failed: no service acts this tick
        applying = [n for n in acting if n in rollouts or APPLY in decisions[n].actions]
        failed, unfinished = self._roll_out(result, [] if errors else applying, rollouts, bound, now)
        if not errors:
            self._act(result, decisions, rollouts, bound)  # the ecs engine's stop / continue calls
        for name, reason in failed.items():
            decisions[name] = _failed(decisions[name], sha, now, reason)
        for name in sorted(decisions):
            if name not in unfinished and name not in held:
                self._remember(result.desired.services[name], decisions[name].record)
        return errors, unfinished

    def _executor(self, result: PlanResult) -> Executor:
        return result.lane.executor if result.lane is not None else self.executor

    def _engine(self, result: PlanResult) -> AgentEngine:
        """The agent engine of the plan's lane: that account's clients and executor."""
        lane = result.lane
        if lane is None or lane.account is None:
            return self.engine
        if lane.account.name not in self._engines:
            self._engines[lane.account.name] = self._new_engine(lane.aws, lane.executor)
        return self._engines[lane.account.name]

    def _ecs_engine(self, result: PlanResult) -> EcsEngine:
        """The ecs engine of the plan's lane."""
        lane = result.lane
        if lane is None or lane.account is None:
            return self.ecs_engine
        if lane.account.name not in self._ecs_engines:
            self._ecs_engines[lane.account.name] = EcsEngine(lane.aws, lane.observer.pacer)
        return self._ecs_engines[lane.account.name]

    def _invalid(self, sha: str, problems: list[Problem]) -> TickResult:
        errors = [p for p in problems if p.severity == "error"]
        first = errors[0] if errors else Problem("", "", "invalid manifests")
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        status = CommitStatus(sha, AGGREGATE, FAILURE, truncate(f"invalid: {first}{more}"))
        log.warning("manifests.invalid", sha=sha[:12], problems=[str(p) for p in errors])
        self._report([status])
        return TickResult(sha, "invalid", {AGGREGATE: status}, problems=problems)

    def untrusted(self, sha: str, reason: str) -> TickResult:
        """A commit that failed signature verification: a failure status on it, and nothing else."""
        status = CommitStatus(sha, AGGREGATE, FAILURE, truncate(reason))
        self._report([status])
        return TickResult(sha, "untrusted", {AGGREGATE: status})

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
            if svc_change is not None and svc_change.hold is not None:  # e.g. a CODE_DEPLOY service
                hold = svc_change.hold
                state = PENDING if hold.waiting else FAILURE
                decisions[name] = Decision((), self._record(manifest), state, truncate(hold.reason))
                continue
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
                decisions[name] = self._ecs_engine(result).decide(
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
                gate_now = gate_of(manifest, result.desired, now)
                decision = hold_for_windows(decision, record, gate_now, creating)
            decisions[name] = decision
        return decisions

    def _roll_out(
        self,
        result: PlanResult,
        names: list[str],
        rollouts: dict[str, Rollout],
        bound: Any,
        now: datetime,
    ) -> tuple[dict[str, str], dict[str, BaseException]]:
        """Carry out the decisions of services ``names``, ``concurrency`` at once, with the plan's lane.

        A rolling-engine service registers its family's new revision if no other service has yet (several
        services may share a family: the first registers, the others wait for it and use its ARN), then is
        updated; an agent-engine service carries out its actions (``Register`` the same way). So
        registrations, paced at 1 per second past their burst, and updates overlap. Returns (service ->
        reason it failed for good, service -> error that stopped it before it was applied).
        """
        executor = self._executor(result)
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

        def apply(name: str) -> Applied:
            if name in rollouts:
                return self._engine(result).carry_out(rollouts[name], result.plan, register, now)
            family, service = self._service_changes(result, name)
            outcome = register(family)
            manifest = result.desired.services[name]
            strategy = resolve_strategy(manifest.spec.get("strategy"), result.desired.strategies)
            bound.info("rollout.apply", service=name, engine=engine_of(strategy), changes=[family, service])
            return executor.execute(result.plan, only=[service], registered=outcome.task_definitions)

        failed: dict[str, str] = {}
        unfinished: dict[str, BaseException] = {}
        for name, outcome in self._in_parallel(names, apply).items():
            if isinstance(outcome, AwsPermanentError):
                failed[name] = truncate(str(outcome))
            elif not isinstance(outcome, Applied):
                unfinished[name] = outcome
        return failed, unfinished

    # -- drift and prune (issue 9) ----------------------------------------------------------------------

    def _settled(self, desired: Desired) -> dict[str, bool]:
        """Services whose desired content already rolled out (the record says so): Service change name ->
        whether it self-heals. What such a service's plan still changes is drift."""
        if self.store is None:
            return {}
        settled = {}
        for manifest in desired.services.values():
            record = self._record(manifest)
            if record is None or record.result != rolling.SUCCEEDED:
                continue
            if record.fingerprint == self._fingerprint(desired, manifest):
                settled[_service_key(manifest)] = self._self_heal(manifest)
        return settled

    def _self_heal(self, manifest: Manifest) -> bool:
        """The Service's own ``selfHeal``, else the agent config's ``sync.selfHeal``."""
        own = manifest.spec.get("selfHeal")
        if isinstance(own, bool):
            return own
        return bool(getattr(getattr(self.config, "sync", None), "self_heal", False))

    def _drift(
        self, result: PlanResult, decisions: dict[str, Decision]
    ) -> tuple[dict[str, Decision], set[str], set[str]]:
        """Drifted services: healed (their rollout goes ahead, saying so) or reported (failure, no change).

        Returns the decisions, the drifted services ("cluster/service") and the manifest names of those
        only reported (they still run what Git asks for, so they hold no dependant back).
        """
        names = {_service_key(m): name for name, m in result.desired.services.items()}
        drifted: set[str] = set()
        reported: set[str] = set()
        for change in result.plan.drifted:
            name = names.get(change.name)
            if name is None or name not in decisions:
                continue
            drifted.add(change.name)
            words = describe_drift(change)
            heal = change.drift == DRIFT_HEAL
            log.warning(
                "drift.detected", service=change.name, drift=words, action="heal" if heal else "report"
            )
            if heal and decisions[name].actions:  # APPLY, or the agent engine's UpdateService
                decisions[name] = replace(decisions[name], description=truncate(f"healing drift: {words}"))
            elif not heal:
                description = truncate(f"drifted from Git: {words}; selfHeal off")
                decisions[name] = Decision((), None, FAILURE, description)
                reported.add(name)
        return decisions, drifted, reported

    def _pruning(self) -> bool:
        return bool(getattr(getattr(self.config, "sync", None), "prune", False))

    def _recorded_clusters(self) -> set[str]:
        """The clusters the agent has rolled out to (its rollout records say so)."""
        if self.store is None:
            return set()
        return {key.split("/")[1] for key, _ in self.store.items("rollout/")}

    def _orphans(self, desired: Desired, lane: Lane | None) -> dict[tuple[str, str], dict[str, Any]]:
        """With ``sync.prune``: the managed services no manifest names, in every cluster the manifests
        name or the agent has rolled out to (within ``clusters.allow``); otherwise none, at no cost.

        In an account's ``lane`` (``accounts``), only that account's clusters are looked at, with its
        clients: a cluster the agent rolled out to that no account lists any more is left alone.
        """
        if not self._pruning():
            return {}
        clusters = {str(m.spec["cluster"]) for m in desired.services.values()}
        clusters |= {str(m.spec.get("clusterName") or m.name) for m in desired.clusters.values()}
        recorded = self._recorded_clusters()
        if lane is not None and lane.account is not None:
            recorded &= set(lane.account.clusters)
        clusters |= recorded
        allowed = getattr(self.config, "clusters", None)
        clusters = {c for c in clusters if allowed is None or allowed.allows(c)}
        known = {
            (str(m.spec["cluster"]), str(m.spec.get("serviceName", n))) for n, m in desired.services.items()
        }
        observer = lane.observer if lane is not None else self.observer
        return observer.orphans(clusters, known)

    def _prune(
        self,
        result: PlanResult,
        decisions: dict[str, Decision],
        errors: dict[str, str],
        running: set[str],
        sha: str,
    ) -> dict[str, CommitStatus]:
        """Delete the services ``result`` (one account's plan, or the commit's) prunes once everything
        else of this commit rolled out, in every account.

        Prune goes last so that a renamed service keeps serving until its successor runs. Returns a
        status per pruned service: pending while the rollout goes on, failure when it failed.
        """
        deletes = [c for c in result.plan.changes if c.action == DELETE]
        if not deletes:
            return {}
        failed = sorted(n for n, d in decisions.items() if d.state in (FAILURE, ERROR) and n not in running)
        rolling_out = sorted(n for n, d in decisions.items() if d.state == PENDING)
        account = result.lane.account if result.lane is not None else None

        def status(context: str, state: str, description: str) -> CommitStatus:
            description = truncate(description)
            if account is not None:
                description = _in_account(account, description)
            return CommitStatus(sha, context, state, description)

        out = {}
        for change in deletes:
            cluster, service = change.name.split("/", 1)
            context = service_context(cluster, service)
            if errors or failed:
                why = errors.get(AGGREGATE) or f"{', '.join(failed)} failed"
                out[context] = status(context, FAILURE, f"not deleted: this commit did not roll out ({why})")
                continue
            if rolling_out:
                out[context] = status(
                    context, PENDING, "to be deleted (no longer in Git) once the rollout finishes"
                )
                continue
            try:
                self._executor(result).execute(result.plan, only=[change_key(change)])
            except AwsPermanentError as e:
                out[context] = status(context, FAILURE, f"delete failed: {e}")
                continue
            log.warning("service.pruned", service=change.name, account=account.label if account else None)
            if self.store is not None:
                self.store.delete(f"rollout/{cluster}/{service}")
            out[context] = status(context, SUCCESS, "deleted: no longer in Git (sync.prune)")
        return out

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
        """Identifies what Git asks of one service: its spec, its strategy and its task-definition content.

        The fields that only tell the agent what to do (ordering, selfHeal) are left out: changing them
        changes nothing in ECS, so a drifted service stays drifted, not "changed in Git".
        """
        family = desired.service_task_family.get(manifest.name)
        td = desired.task_definitions.get(family) if family else None
        strategy = resolve_strategy(manifest.spec.get("strategy"), desired.strategies)
        spec = {k: v for k, v in manifest.spec.items() if k not in _AGENT_ONLY_FIELDS}
        text = json.dumps(
            [spec, strategy, content_hash(td.body) if td else None], sort_keys=True, default=str
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _stored(self, manifest: Manifest) -> dict[str, Any] | None:
        return self.store.get(_rollout_key(manifest)) if self.store is not None else None

    def _record(self, manifest: Manifest) -> RolloutRecord | None:
        return rollout_record(self._stored(manifest))

    def _act(
        self, result: PlanResult, decisions: dict[str, Decision], rollouts: dict[str, Rollout], bound: Any
    ) -> None:
        """The ecs engine's calls other than APPLY (stop, continue). One AWS refuses is reported on the
        commit; the record is kept, so the next tick reads the deployment again and retries."""
        for name, decision in sorted(decisions.items()):
            if name not in rollouts and any(a != APPLY for a in decision.actions):
                try:
                    self._ecs_engine(result).act(name, decision)
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
        self,
        desired: Desired,
        decisions: dict[str, Decision],
        errors: dict[str, str],
        sha: str,
        drifted: Collection[str] = (),
    ) -> dict[str, CommitStatus]:
        out = {}
        for name, d in decisions.items():
            m = desired.services[name]
            ctx = service_context(m.spec["cluster"], m.spec.get("serviceName", name))
            out[ctx] = CommitStatus(sha, ctx, d.state, self._where(m, desired, d.description))
        out[AGGREGATE] = _aggregate(sha, decisions, errors, drifted)
        return out

    def _other_statuses(
        self, desired: Desired, decisions: dict[str, Decision]
    ) -> dict[tuple[str, str], CommitStatus]:
        """Statuses the engines asked for on other commits (a superseded one), with an aggregate for each."""
        out: dict[tuple[str, str], CommitStatus] = {}
        by_sha: dict[str, dict[str, Decision]] = {}
        for name, decision in sorted(decisions.items()):
            m = desired.services[name]
            ctx = service_context(m.spec["cluster"], m.spec.get("serviceName", name))
            for sha, state, description in decision.other_commits:
                text = self._where(m, desired, truncate(description))
                out[(sha, ctx)] = CommitStatus(sha, ctx, state, text)
                by_sha.setdefault(sha, {})[name] = Decision((), None, state, description)
        for sha, theirs in by_sha.items():
            out[(sha, AGGREGATE)] = _aggregate(sha, theirs, {})
        return out

    def _where(self, manifest: Manifest, desired: Desired, description: str) -> str:
        """``description`` naming the account the service is in, with ``accounts``: e.g. "web:5 running
        4/4 [prod 111111111111 eu-west-1]"."""
        account = account_of_service(manifest, desired, self.accounts)
        if account is None:
            return description
        return _in_account(account, description)

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
            # The outbox keeps the status (in the store) before it counts as written: a crash in between
            # sends it twice, never zero times.
            if self.outbox is not None:
                self.outbox.put(status)
            if self.store is not None:
                self.store.put(key, current)
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


def _starts(rollout: Rollout, decision: Decision) -> bool:
    """Whether an agent-engine decision would start a rollout (so ``dependsOn`` and waves hold it): it
    creates a task set or registers a revision, or it acts while its record is a new in-progress one (no
    rollout of this content was in progress before this tick). Steps of a rollout already under way,
    rollbacks and aborts of a superseded rollout are never held."""
    if not decision.actions:
        return False
    if any(isinstance(a, CreateTaskSet | RegisterAction) for a in decision.actions):
        return True
    new, old = decision.record, rollout.record
    if new is None or getattr(new, "result", None) != IN_PROGRESS:
        return False
    return old is None or old.result != IN_PROGRESS


def _in_account(account: Any, description: str) -> str:
    where = " ".join(filter(None, (account.name, account.account_id, account.region)))
    return truncate(description, MAX_DESCRIPTION - len(where) - 3) + f" [{where}]"


def _rollout_key(manifest: Manifest) -> str:
    return f"rollout/{_service_key(manifest)}"


def _service_key(manifest: Manifest) -> str:
    """``cluster/service`` of a Service manifest: its Change's name, its rollout record's key."""
    return f"{manifest.spec['cluster']}/{manifest.spec.get('serviceName', manifest.name)}"


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


def _aggregate(
    sha: str, decisions: dict[str, Decision], errors: dict[str, str], drifted: Collection[str] = ()
) -> CommitStatus:
    if AGGREGATE in errors:
        return CommitStatus(sha, AGGREGATE, ERROR, errors[AGGREGATE])
    by_state: dict[str, list[str]] = {}
    for name, d in sorted(decisions.items()):
        by_state.setdefault("drifted" if name in drifted else d.state, []).append(name)
    if FAILURE not in by_state and "drifted" in by_state:
        names = by_state["drifted"]
        return CommitStatus(
            sha, AGGREGATE, FAILURE, truncate(f"{len(names)} drifted from Git: {', '.join(names)}")
        )
    if FAILURE in by_state:
        names = by_state[FAILURE]
        return CommitStatus(sha, AGGREGATE, FAILURE, truncate(f"{len(names)} failed: {', '.join(names)}"))
    if PENDING in by_state:
        names = by_state[PENDING]
        return CommitStatus(
            sha, AGGREGATE, PENDING, truncate(f"rolling out {len(names)}: {', '.join(names)}")
        )
    return CommitStatus(sha, AGGREGATE, SUCCESS, f"{len(decisions)} services deployed")


def _outcome(decisions: dict[str, Decision], errors: dict[str, str], drifted: Collection[str] = ()) -> str:
    states = {d.state for n, d in decisions.items() if n not in drifted}
    if errors or FAILURE in states:
        return "failed"
    if drifted:
        return "drifted"
    if any(d.actions for d in decisions.values()):
        return "applied"
    return "rolling" if PENDING in states else "unchanged"
