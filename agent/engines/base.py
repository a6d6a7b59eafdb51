"""What every engine is handed and what it must answer: the ``Engine`` protocol.

A tick plans the whole commit, then hands each Service to the one engine that claims it (the registry,
agent.engines.registry). An engine is three steps, called in this order on every tick:

* ``observe(tick, subjects, now)``: read what the pure state machine needs for all of its services at
  once (batched AWS reads), service name -> observation;
* ``decide(tick, subject, observation, now)``: the pure state machine's Decision (actions, record,
  commit-status state and text, wake-up time);
* ``act(tick, subject, observation, decision, step)``: carry out the decision's actions after the
  ordering gate let it through; returns a replacement Decision when acting changed the outcome (an AWS
  refusal it reports itself), else None. A permanent AWS error it raises fails the rollout; any other
  error leaves the service to the next tick.

``claims`` says which services an engine takes, ``starts`` whether a decision starts a rollout (so that
``dependsOn`` and waves hold it like an APPLY). Adding an engine is one module with a class like these and
one line in the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, Protocol

from agent.aws.executing import Applied, Executor
from agent.manifests.model import Desired, Manifest
from agent.plan.model import NO_CHANGE, REGISTER, Change, Plan
from agent.plan.observed import Observed
from agent.plan.services import resolve_strategy, switch_blocker
from agent.plan.taskdefs import family_revision
from agent.rollout.decisions import FAILURE, PENDING, Decision, RolloutRecord
from agent.status.model import truncate

SWITCH_POLL = timedelta(seconds=30)  # how often a controller switch waiting for one task set looks again

Register = Callable[[str], Applied]  # family -> what registering it (once per tick) gave


@dataclass(frozen=True)
class Tick:
    """One plan on one tick (the commit's, or one account's): what every engine reads from."""

    plan: Plan
    desired: Desired
    observed: Observed
    sha: str

    @cached_property
    def changes(self) -> dict[tuple[str, str], Change]:
        """The plan's changes by (kind, name), indexed once."""
        return {(c.kind, c.name): c for c in self.plan.changes}


@dataclass(frozen=True)
class Step:
    """How an engine writes: the lane's executor, ``register`` (a family's new revision, registered once
    per tick however many services share it), and the tick's time."""

    executor: Executor
    register: Register
    now: datetime


@dataclass(frozen=True)
class Subject:
    """One Service on this tick: what Git asks of it, what runs, and the stored record (a hint only)."""

    name: str  # the Service manifest's name
    manifest: Manifest
    cluster: str
    service: str
    family: str | None  # its task-definition family, when the manifest names one
    service_change: Change | None
    td_change: Change | None
    live: Mapping[str, Any] | None  # the service as DescribeServices gave it; None before it exists
    strategy: Mapping[str, Any] | None  # the resolved DeploymentStrategy spec
    fingerprint: str
    stored: Mapping[str, Any] | None  # the rollout record as the store holds it

    @property
    def context(self) -> str:
        return f"{self.cluster}/{self.service}"

    @property
    def in_sync(self) -> bool:
        """Neither the service nor its task definition changes."""
        changes = (self.service_change, self.td_change)
        return all(c is None or (c.action == NO_CHANGE and not c.fields) for c in changes)

    @property
    def target(self) -> str | None:
        """``family:revision`` Git asks for (``family:(new)`` before registration), or None."""
        change = self.td_change
        if change is None:
            return None
        if change.action == REGISTER:
            return f"{self.family}:(new)"
        arn = change.request.get("taskDefinitionArn")
        return family_revision(arn) if arn else None


def subject_of(tick: Tick, name: str, fingerprint: str, stored: Mapping[str, Any] | None) -> Subject:
    manifest = tick.desired.services[name]
    cluster, service = manifest.spec["cluster"], manifest.spec.get("serviceName", name)
    family = tick.desired.service_task_family.get(name)
    changes = tick.changes
    try:
        strategy = resolve_strategy(manifest.spec.get("strategy"), tick.desired.strategies)
    except KeyError:
        strategy = None
    return Subject(
        name=name,
        manifest=manifest,
        cluster=cluster,
        service=service,
        family=family,
        service_change=changes.get(("Service", f"{cluster}/{service}")),
        td_change=changes.get(("TaskDefinition", family)) if family else None,
        live=tick.observed.services.get((cluster, service)),
        strategy=strategy,
        fingerprint=fingerprint,
        stored=stored,
    )


def held(subject: Subject, now: datetime) -> Decision | None:
    """A decision no engine needs to be asked for: the planner holds the service (a CODE_DEPLOY service,
    say), or its deployment controller must switch and cannot yet. None otherwise."""
    hold = subject.service_change.hold if subject.service_change is not None else None
    if hold is not None:
        state = PENDING if hold.waiting else FAILURE
        return Decision((), RolloutRecord.from_json(subject.stored), state, truncate(hold.reason))
    blocked = switch_blocker(subject.live, subject.strategy)
    if blocked is not None:
        state, reason = blocked
        wake = now + SWITCH_POLL if state == PENDING else None
        return Decision((), None, state, truncate(reason), wake)
    return None


def apply_service(tick: Tick, subject: Subject, step: Step) -> Applied:
    """The plan's part for one service, as the executor applies it: its family's new revision (registered
    once per tick), then CreateService or UpdateService."""
    outcome = step.register(str(subject.family))
    return step.executor.execute(
        tick.plan, only=[f"Service/{subject.context}"], registered=outcome.task_definitions
    )


class Engine(Protocol):
    """A rollout engine: observe its services in one batch, decide each, act on what the gate let through."""

    name: ClassVar[str]

    @staticmethod
    def claims(subject: Subject, tick: Tick) -> bool: ...

    def observe(self, tick: Tick, subjects: Sequence[Subject], now: datetime) -> dict[str, Any]: ...

    def decide(self, tick: Tick, subject: Subject, observation: Any, now: datetime) -> Decision: ...

    def starts(self, observation: Any, decision: Decision) -> bool: ...

    def act(
        self, tick: Tick, subject: Subject, observation: Any, decision: Decision, step: Step
    ) -> Decision | None: ...
