"""The calls an agent-engine decision asks the reconciler to make, in order."""

from __future__ import annotations

from dataclasses import dataclass

from .model import Weights


@dataclass(frozen=True)
class Register:
    """Register the target task definition (the plan's REGISTER change)."""


@dataclass(frozen=True)
class UpdateService:
    """Apply the plan's non-task-set service change (desiredCount, tags, ...)."""


@dataclass(frozen=True)
class CreateTaskSet:
    """Create a task set at scale 100 % for ``task_definition`` (ARN) registered to ``target_group``."""

    task_definition: str
    target_group: str
    external_id: str


@dataclass(frozen=True)
class SetWeights:
    """Set a listener rule's forward action to these (target group ARN, weight) pairs; they sum to 100."""

    rule: str
    weights: Weights


@dataclass(frozen=True)
class SetPrimary:
    """Make this task set (ARN) the service's primary task set."""

    task_set: str


@dataclass(frozen=True)
class DeleteTaskSet:
    """Delete this task set (ARN)."""

    task_set: str


@dataclass(frozen=True)
class RunHook:
    """Call the hook configured for ``stage``; the reconciler stores the answer as a HookState."""

    stage: str
    weights: Weights


Action = Register | UpdateService | CreateTaskSet | SetWeights | SetPrimary | DeleteTaskSet | RunHook
