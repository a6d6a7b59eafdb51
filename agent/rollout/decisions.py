"""What an engine decides on one tick, and the small records it keeps between ticks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Commit-status states.
PENDING, SUCCESS, FAILURE, ERROR = "pending", "success", "failure", "error"

# Actions the loop carries out for an engine.
APPLY = "apply"  # execute this service's part of the plan (register/reuse task definition, create/update)


@dataclass(frozen=True)
class RolloutRecord:
    """What the agent remembers about one service's rollout (kept in the state store).

    ``fingerprint`` identifies the desired content (task-definition hash + service request), so a
    rollout that failed is not retried until Git asks for something different.
    """

    sha: str
    fingerprint: str
    result: str  # "in_progress" | "succeeded" | "failed"
    started_at: str  # ISO-8601
    task_definition: str | None = None  # family:revision being rolled out, when known
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RolloutRecord | None:
        """Ignores keys it does not know: another engine's record (ecs, agent) carries more."""
        if not data:
            return None
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Decision:
    """The engine's answer for one tick: what to do, what to remember, when to come back, what to say."""

    actions: tuple[Any, ...]  # APPLY for the rolling engine; action objects for the agent engine
    record: Any  # RolloutRecord | AgentRecord | None
    state: str  # commit-status state for this service on this commit
    description: str
    wake_at: datetime | None = None
    # Statuses to write on OTHER commits: (sha, state, description), e.g. the commit a newer one superseded.
    other_commits: tuple[tuple[str, str, str], ...] = ()
