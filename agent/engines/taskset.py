"""The task-set engine (``engine: agent``): the agent moves traffic itself, one task set per revision.

A service on the EXTERNAL deployment controller whose strategy has ``engine: agent`` and which already
runs a PRIMARY task set is this engine's (creating the service is the rolling engine's). For those:

1. **observe**, batched over all of them: listener-rule weights (DescribeRules by ARN), alarm states
   (DescribeAlarms by name); task sets come with DescribeServices (the Observer); hook results and the
   rollout record come from the store; the Gate from the service's windows;
2. **decide**: ``agent.rollout.progressive.advance(record, observation, strategy, now)``, pure;
3. **act** on the decision's actions in order (the tick runs services in parallel): Register (the plan's
   TaskDefinition change, once per family per tick), UpdateService (the plan's service change without its
   task-set part), CreateTaskSet / SetWeights / SetPrimary / DeleteTaskSet (agent.aws.traffic), RunHook
   (agent.engines.hooks; the answer is stored at once under
   ``hook/<cluster>/<service>/<fingerprint>/<stage>``).

The commit status comes from the decision made before the actions ran; the next tick observes what they
did.

A service whose manifest moved to another engine while it still runs more than its PRIMARY task set on
the EXTERNAL controller (``hands_back``) is this engine's too: it winds the rollout down first
(``progressive.hand_back``: traffic back on the task set kept, the others deleted), since ECS switches the
controller only of a service with exactly one task set; after that the native or rolling engine applies
the switch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

import structlog

from agent.aws.executing import Applied, Executor
from agent.aws.traffic import (
    TrafficObserver,
    TrafficWriter,
    has_primary_task_set,
    task_set_request,
    task_sets_of,
)
from agent.engines.base import Register, Step, Subject, Tick
from agent.engines.gating import gate_of
from agent.engines.hooks import HookCall, HookCaller, hook_key, state_from_json, state_to_json
from agent.manifests.model import Desired, Manifest
from agent.plan.model import NO_CHANGE, REGISTER, Change, Plan, TaskDefinitionRef
from agent.plan.observed import Observed
from agent.plan.services import (
    create_service_request,
    engine_of,
    ref,
    resolve_strategy,
    switch_blocker,
    wanted_strategy,
)
from agent.plan.taskdefs import content_hash, family_revision
from agent.rollout import progressive
from agent.rollout.decisions import FAILURE, PENDING, Decision
from agent.rollout.progressive import AgentObservation, AgentRecord, Strategy, Traffic, Wiring
from agent.status.model import truncate

log = structlog.get_logger()


# ------------------------------------------------------------------------------------- one rollout


@dataclass
class Rollout:
    """One agent-engine service on this tick: where it is, what Git asks, and what the engine decided."""

    name: str  # Service manifest name
    cluster: str
    service: str
    family: str | None
    strategy: Strategy
    wiring: Wiring | str  # target groups and listener rules, or why the manifest lacks them
    task_set: dict[str, Any]  # the plan's CreateTaskSet parameters (taskSet of create_service_request)
    service_change: Change | None
    leaving: str | None = None  # the ECS strategy Git now asks for: wind the agent engine down (hand_back)
    record: AgentRecord | None = None
    problem: str = ""  # why the engine cannot drive the service (wiring incomplete, a rule gone)
    observation: AgentObservation | None = None
    decision: Decision | None = None

    @property
    def context(self) -> str:
        return f"{self.cluster}/{self.service}"

    @property
    def rules(self) -> tuple[str, ...]:
        wiring = self.wiring
        if isinstance(wiring, str):
            return ()
        return (wiring.production_rule,) + ((wiring.test_rule,) if wiring.test_rule else ())


def takes(manifest: Manifest, desired: Desired, observed: Observed) -> bool:
    """True for a service the agent engine drives: ``engine: agent`` and a PRIMARY task set live."""
    try:
        strategy = resolve_strategy(manifest.spec.get("strategy"), desired.strategies)
    except KeyError:
        return False
    if engine_of(strategy) != "agent":
        return False
    key = (manifest.spec["cluster"], manifest.spec.get("serviceName", manifest.name))
    return has_primary_task_set(observed.services.get(key))


def hands_back(manifest: Manifest, desired: Desired, observed: Observed) -> str | None:
    """The ECS strategy (``ROLLING``, ``CANARY``, ...) Git asks for when the service is not on engine agent
    any more but still runs more than one PRIMARY task set on the EXTERNAL controller (an agent-engine
    rollout was in flight): the agent engine winds that down before the switch. None otherwise."""
    try:
        strategy = resolve_strategy(manifest.spec.get("strategy"), desired.strategies)
    except KeyError:
        return None
    if engine_of(strategy) == "agent":
        return None
    key = (manifest.spec["cluster"], manifest.spec.get("serviceName", manifest.name))
    blocked = switch_blocker(observed.services.get(key), strategy)
    return wanted_strategy(strategy) if blocked is not None and blocked[0] == PENDING else None


class TasksetEngine:
    """Observes, decides and carries out the task-set engine's rollouts; one per account lane."""

    name: ClassVar[str] = "taskset"

    def __init__(self, *, aws: Any, executor: Executor, store: Any, hooks: HookCaller, **_: Any) -> None:
        self.traffic = TrafficObserver(aws)
        self.executor = executor
        self.store = store
        self.hooks = hooks
        # context ("cluster/service") -> the last tick's observation, its weights as this tick left them
        # (the dashboard reads it; nothing here decides on it).
        self.last_views: dict[str, AgentObservation] = {}

    @staticmethod
    def claims(subject: Subject, tick: Tick) -> bool:
        desired, observed = tick.desired, tick.observed
        return takes(subject.manifest, desired, observed) or bool(
            hands_back(subject.manifest, desired, observed)
        )

    # -- observe and decide ------------------------------------------------------------------------

    def observe(self, tick: Tick, subjects: Sequence[Subject], now: datetime) -> dict[str, Rollout]:
        """A Rollout, observed, for each service; their listener rules and alarms are read together (one
        DescribeRules per 20 rules, one DescribeAlarms per 100 alarms)."""
        if not subjects:
            return {}
        desired, observed = tick.desired, tick.observed
        rollouts = {s.name: self._rollout(desired, observed, s) for s in subjects}
        rules = self.traffic.rules(arn for r in rollouts.values() for arn in r.rules)
        alarms = self.traffic.alarms(a for r in rollouts.values() for a in r.strategy.alarms)
        views: dict[str, AgentObservation] = {}
        for subject in subjects:
            rollout = rollouts[subject.name]
            rollout.record = AgentRecord.from_json(subject.stored)
            rollout.problem = _problem(rollout, rules)
            if rollout.problem:
                continue
            wiring = rollout.wiring
            assert isinstance(wiring, Wiring)
            target, label = _target(rollout.task_set.get("taskDefinition"))
            rollout.observation = AgentObservation(
                sha=tick.sha,
                fingerprint=subject.fingerprint,
                target=target,
                target_label=label,
                wiring=wiring,
                task_sets=task_sets_of(subject.live),
                traffic=Traffic(
                    production=rules[wiring.production_rule],
                    test=rules[wiring.test_rule] if wiring.test_rule else None,
                ),
                alarms={a: alarms[a] for a in rollout.strategy.alarms if a in alarms},
                hooks=self._hook_states(rollout, subject.fingerprint),
                gate=gate_of(subject.manifest, desired, now),
                service_in_sync=_service_in_sync(rollout.service_change),
            )
            views[rollout.context] = rollout.observation
        self.last_views = views
        return rollouts

    def decide(self, tick: Tick, subject: Subject, observation: Any, now: datetime) -> Decision:
        rollout: Rollout = observation
        if rollout.problem:
            problem = rollout.problem
            if rollout.leaving:
                problem = truncate(f"switching to {rollout.leaving}: {problem}")  # to undo the rollout
            rollout.decision = Decision((), rollout.record, FAILURE, problem)
        elif rollout.leaving:
            assert rollout.observation is not None
            observed = rollout.observation
            rollout.decision = progressive.hand_back(rollout.record, observed, rollout.leaving, now)
        else:
            assert rollout.observation is not None
            observed = rollout.observation
            rollout.decision = progressive.advance(rollout.record, observed, rollout.strategy, now)
        return rollout.decision

    def starts(self, observation: Any, decision: Decision) -> bool:
        """Whether a decision would start a rollout (so ``dependsOn`` and waves hold it): it creates a task
        set or registers a revision, or it acts while its record is a new in-progress one (no rollout of
        this content was in progress before this tick). Steps of a rollout already under way, rollbacks
        and aborts of a superseded rollout are never held."""
        if not decision.actions:
            return False
        if any(isinstance(a, progressive.CreateTaskSet | progressive.Register) for a in decision.actions):
            return True
        new, old = decision.record, observation.record
        if new is None or getattr(new, "result", None) != progressive.IN_PROGRESS:
            return False
        return old is None or old.result != progressive.IN_PROGRESS

    def act(
        self, tick: Tick, subject: Subject, observation: Any, decision: Decision, step: Step
    ) -> Decision | None:
        rollout: Rollout = observation
        rollout.decision = decision
        self.carry_out(rollout, tick.plan, step.register, step.now)
        return None

    def _rollout(self, desired: Desired, observed: Observed, subject: Subject) -> Rollout:
        """What Git asks of one service: strategy, wiring, and the task set a new revision gets."""
        manifest, name = subject.manifest, subject.name
        leaving = hands_back(manifest, desired, observed)
        spec = manifest.spec
        cluster, service, family = subject.cluster, subject.service, subject.family
        strategy_spec = subject.strategy or {}
        td_change = subject.td_change
        td: TaskDefinitionRef | str | None = None
        if family and td_change is not None:  # REGISTER: the ARN is known once registered
            arn = td_change.request.get("taskDefinitionArn") if td_change.action != REGISTER else None
            td = TaskDefinitionRef(family, content_hash(desired.task_definitions[family].body), arn)
        elif isinstance(spec.get("taskDefinition"), str):
            td = spec["taskDefinition"]
        request = create_service_request(
            spec, service_name=service, cluster=cluster, task_definition=td, strategy=strategy_spec
        )
        return Rollout(
            name=name,
            cluster=cluster,
            service=service,
            family=family,
            # winding down runs no hooks and reads no alarms: the strategy Git asks for is not the engine's
            strategy=Strategy("blueGreen", (100,)) if leaving else Strategy.from_spec(strategy_spec),
            wiring=_wiring(manifest),
            task_set=dict(request.get("taskSet") or {}),
            service_change=subject.service_change,
            leaving=leaving,
        )

    def _hook_states(self, rollout: Rollout, fingerprint: str) -> dict[str, progressive.HookState]:
        if self.store is None:
            return {}
        states = {}
        for hook in rollout.strategy.hooks:
            state = state_from_json(
                self.store.get(hook_key(rollout.cluster, rollout.service, fingerprint, hook.stage))
            )
            if state is not None:
                states[hook.stage] = state
        return states

    # -- carry out ---------------------------------------------------------------------------------

    def carry_out(self, rollout: Rollout, plan: Plan, register: Register, now: datetime) -> Applied:
        """Send the decision's actions, in order; raises the first error (what ran before it stays done)."""
        decision, obs = rollout.decision, rollout.observation
        applied = Applied()
        if decision is None or obs is None or not decision.actions:
            return applied
        change = rollout.service_change or Change("Service", rollout.context, NO_CHANGE)
        writer = TrafficWriter(self.executor, rollout.cluster, rollout.service, change)
        target = obs.target
        log.info(
            "rollout.agent",
            service=rollout.name,
            actions=[type(a).__name__ for a in decision.actions],
            state=decision.state,
            description=decision.description,
        )
        for action in decision.actions:
            if isinstance(action, progressive.Register):
                if rollout.family is None:
                    raise RuntimeError(f"{rollout.name}: nothing to register (no task-definition family)")
                applied = register(rollout.family)
                target = applied.task_definitions.get(rollout.family, target)
            elif isinstance(action, progressive.UpdateService):
                self._update_service(change, plan)
            elif isinstance(action, progressive.CreateTaskSet):
                task_definition = action.task_definition or target
                if not task_definition:
                    raise RuntimeError(f"{rollout.name}: no task definition to create a task set with")
                params = task_set_request(
                    rollout.task_set, task_definition, action.target_group, action.external_id
                )
                writer.create_task_set(params)
            elif isinstance(action, progressive.SetWeights):
                writer.set_weights(action.rule, action.weights)
                self._written(rollout.context, action)
            elif isinstance(action, progressive.SetPrimary):
                writer.set_primary(action.task_set)
            elif isinstance(action, progressive.DeleteTaskSet):
                writer.delete_task_set(action.task_set)
            elif isinstance(action, progressive.RunHook):
                self._run_hook(rollout, action, target, now)
            else:  # pragma: no cover - the engine only returns the actions above
                raise TypeError(f"unknown agent-engine action {action!r}")
        return applied

    def _written(self, context: str, action: progressive.SetWeights) -> None:
        """Keep ``last_views`` showing the weights just written (the next tick observes them anyway)."""
        view = self.last_views.get(context)
        if view is None:
            return
        weights = dict(action.weights)
        if action.rule == view.wiring.production_rule:
            traffic = replace(view.traffic, production=weights)
        elif action.rule == view.wiring.test_rule:
            traffic = replace(view.traffic, test=weights)
        else:
            return
        self.last_views[context] = replace(view, traffic=traffic)

    def _update_service(self, change: Change, plan: Plan) -> None:
        """The plan's service change without its task-set part (UpdateService, tags)."""
        request = {k: v for k, v in change.request.items() if k != "taskSet"}
        if change.action == NO_CHANGE or not request:
            return
        self.executor.execute(Plan((replace(change, request=request),), plan.revision))

    def _run_hook(
        self, rollout: Rollout, action: progressive.RunHook, target: str | None, now: datetime
    ) -> None:
        hook = rollout.strategy.hook(action.stage)
        obs = rollout.observation
        if hook is None or obs is None:
            return
        previous = obs.hooks.get(action.stage)
        call = HookCall(rollout.service, rollout.cluster, obs.sha, action.stage, action.weights, target)
        state = self.hooks.call(hook, call, previous, now)
        if self.store is not None:
            key = hook_key(rollout.cluster, rollout.service, obs.fingerprint, action.stage)
            self.store.put(key, state_to_json(state))


# ------------------------------------------------------------------------------------------ helpers


def _wiring(manifest: Manifest) -> Wiring | str:
    """The service's target groups and listener rules (resolved ARNs), or why they are incomplete."""
    balancers = manifest.spec.get("loadBalancers") or []
    lb = balancers[0] if balancers and isinstance(balancers[0], Mapping) else {}
    missing = [k for k in ("targetGroup", "alternateTargetGroup", "productionListenerRule") if not lb.get(k)]
    if missing:
        return f"engine agent needs loadBalancers[0] {', '.join(missing)} ({manifest.source.file})"
    port = lb.get("containerPort")
    return Wiring(
        target_groups=(str(ref(lb["targetGroup"])), str(ref(lb["alternateTargetGroup"]))),
        production_rule=str(ref(lb["productionListenerRule"])),
        test_rule=str(ref(lb["testListenerRule"])) if lb.get("testListenerRule") else None,
        container_name=lb.get("containerName"),
        container_port=int(port) if port is not None else None,
    )


def _problem(rollout: Rollout, rules: Mapping[str, Any]) -> str:
    """Why the engine cannot drive this service (incomplete wiring, a listener rule gone), or ""."""
    if isinstance(rollout.wiring, str):
        return rollout.wiring
    missing = [arn for arn in rollout.rules if arn not in rules]
    return f"listener rule {missing[0]} not found" if missing else ""


def _target(td: Any) -> tuple[str | None, str]:
    """(task-definition ARN Git asks for or None before registration, ``family:revision`` label)."""
    if isinstance(td, TaskDefinitionRef):
        if td.arn:
            return td.arn, family_revision(td.arn)
        return None, f"{td.family}:(new)"
    if isinstance(td, str) and td:
        return td, family_revision(td)
    return None, "(no task definition)"


def _service_in_sync(change: Change | None) -> bool:
    """True when the plan's service change asks for nothing but a new task set."""
    if change is None or change.action == NO_CHANGE:
        return True
    return not any(key != "taskSet" for key in change.request)
