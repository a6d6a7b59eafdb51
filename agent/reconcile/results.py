"""What a plan and a tick hand back: the plan with the inputs it was made from, and what the tick did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.aws.accounts import Lane
from agent.errors import Problem
from agent.manifests.model import Desired
from agent.plan.model import Plan
from agent.plan.observed import Observed
from agent.status.model import CommitStatus


@dataclass
class PlanResult:
    """A plan and the inputs it was made from (the engines and the reporter need them).

    With ``accounts`` in the agent config, ``plan`` holds every account's changes (each naming its
    account) and ``desired`` the whole commit; ``parts`` holds one PlanResult per account, planned in its
    ``lane``, which is what the tick executes. ``error`` is why a part's account could not be read.
    ``records`` holds the stored rollout record of each service that has one, by manifest name, as read
    when planning (None: not read; the engines read the store).
    """

    plan: Plan
    desired: Desired
    observed: Observed
    parts: list[PlanResult] = field(default_factory=list)
    lane: Lane | None = None
    error: str = ""
    records: dict[str, Any] | None = None

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
    # "cluster/service" of the services the tick acted on in a first pass, before reading the others.
    first_pass: tuple[str, ...] = ()
