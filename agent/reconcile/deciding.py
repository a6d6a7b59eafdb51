"""Every service of one plan handed to the engine that claims it: observed in one batch per engine, then
decided one by one, then drift applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.engines import Engine, Engines, Subject, Tick, engine_of
from agent.engines.base import subject_of
from agent.reconcile.drift import apply_drift
from agent.reconcile.fingerprints import fingerprint, rollout_record, rollout_records
from agent.reconcile.results import PlanResult
from agent.rollout.decisions import ERROR, Decision
from agent.status.model import truncate


@dataclass
class Chosen:
    """One service's engine on this tick, what the engine was handed, and what it observed."""

    engine: Engine
    subject: Subject
    observation: Any


@dataclass
class Decided:
    """One plan's decisions (one account's, or the commit's)."""

    tick: Tick
    decisions: dict[str, Decision] = field(default_factory=dict)
    chosen: dict[str, Chosen] = field(default_factory=dict)
    drifted: set[str] = field(default_factory=set)  # "cluster/service" of the services found drifted
    reported: set[str] = field(default_factory=set)  # drifted and only reported: they hold nobody back
    stored: dict[str, Any] = field(default_factory=dict)  # name -> its rollout record as read from the store

    def starting(self) -> set[str]:
        """The services whose decision starts a rollout in an engine's own way (beyond an APPLY)."""
        return {
            name
            for name, c in self.chosen.items()
            if name in self.decisions and c.engine.starts(c.observation, self.decisions[name])
        }


def decide(result: PlanResult, engines: Engines, store: Any, sha: str, now: datetime) -> Decided:
    """The engines' decisions for one plan, drift applied."""
    tick = Tick(result.plan, result.desired, result.observed, sha)
    decided = Decided(tick)
    records = result.records if result.records is not None else rollout_records(store, result.desired)
    if result.error:  # the account could not be read: nothing is applied there
        for name in result.desired.services:
            stored = decided.stored[name] = records.get(name)
            decided.decisions[name] = Decision((), rollout_record(stored), ERROR, truncate(result.error))
        return decided
    by_engine: dict[str, list[Subject]] = {}
    for name, manifest in result.desired.services.items():
        stored = decided.stored[name] = records.get(name)
        subject = subject_of(tick, name, fingerprint(result.desired, manifest), stored)
        by_engine.setdefault(engine_of(subject, tick), []).append(subject)
    for engine in engines:  # in the registry's order
        subjects = by_engine.get(engine.name, [])
        if not subjects:
            continue
        observations = engine.observe(tick, subjects, now)
        for subject in subjects:
            observation = observations.get(subject.name)
            decided.decisions[subject.name] = engine.decide(tick, subject, observation, now)
            decided.chosen[subject.name] = Chosen(engine, subject, observation)
    in_order = {name: decided.decisions[name] for name in result.desired.services}
    decided.decisions, decided.drifted, decided.reported = apply_drift(result, in_order)
    return decided
