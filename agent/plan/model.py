"""The Plan value object: what one commit changes, field by field.

``cli plan`` renders it; ``apply`` executes the same object. Dry-run means "render and stop".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Actions a change can carry.
CREATE = "create"  # Service, Cluster, CapacityProvider that does not exist yet
UPDATE = "update"  # exists, some fields differ
NO_CHANGE = "no-change"
REGISTER = "register"  # TaskDefinition: a new revision is needed
REUSE = "reuse"  # TaskDefinition: an existing revision has the same content (hash tag); no registration
DELETE = "delete"  # Service the agent manages that no manifest names any more (prune: true)

# Change.drift: the change is ECS moving away from what Git asked (and the agent applied), not Git moving.
DRIFT_HEAL = "heal"  # selfHeal: applying the plan corrects it
DRIFT_REPORT = "report"  # reported only: applying leaves it as it is


class _Absent:
    """Marks a field that one side does not have (renders as ``(none)``, JSON ``null``)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs. ``path`` is a JSON pointer into the resource's API shape, with list items
    that have a name (containers, environment, secrets, tags) addressed by that name, e.g.
    ``/containerDefinitions/web/image``."""

    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class TaskDefinitionRef:
    """A task definition a service will run: known ARN, or "the revision with this content hash"."""

    family: str
    content_hash: str
    arn: str | None = None  # known when reused or unchanged; None until the executor registers it


@dataclass(frozen=True)
class AccountRef:
    """The AWS account and region a change happens in (with ``accounts`` in the agent config)."""

    name: str  # the config's name for it, e.g. "prod"
    account_id: str | None
    region: str

    @property
    def label(self) -> str:
        """``prod (111111111111, eu-west-1)``, or ``home (eu-west-1)`` when the id is not known."""
        where = ", ".join(p for p in (self.account_id, self.region) if p)
        return f"{self.name} ({where})"


@dataclass(frozen=True)
class Hold:
    """Why a change must not be applied yet: a human must act first, or (``waiting``) ECS must finish
    something. The plan shows it; the loop applies nothing for that resource and reports ``reason``."""

    reason: str
    waiting: bool = False


@dataclass(frozen=True)
class Change:
    """One resource and what happens to it.

    ``request`` holds the exact API parameters the executor sends (RegisterTaskDefinition,
    CreateService/UpdateService, CreateCluster/PutClusterCapacityProviders/UpdateClusterSettings,
    CreateCapacityProvider/UpdateCapacityProvider). A service request's ``taskDefinition`` is a
    ``TaskDefinitionRef`` that the executor turns into an ARN.
    """

    kind: str  # "TaskDefinition" | "Service" | "Cluster" | "CapacityProvider"
    name: str  # family, "cluster/service", cluster name, capacity-provider name
    action: str
    source: str = ""  # manifest file (relative to the root) that asks for it
    fields: tuple[FieldChange, ...] = ()
    request: dict[str, Any] = field(default_factory=dict, compare=False)
    reason: str = ""  # one line for humans, e.g. "content a1b2c3 matches web:7"
    note: str = ""  # what people must read before applying it, e.g. a CodeDeploy migration
    hold: Hold | None = None  # set: the loop applies nothing for this resource (see Hold)
    account: AccountRef | None = None  # with several accounts: where it happens
    drift: str = ""  # "" (Git asks for it), DRIFT_HEAL or DRIFT_REPORT (ECS changed, Git did not)
    wave: int | None = None  # Service: the step of the rollout it belongs to (0 first; agent.plan.ordering)
    after: tuple[str, ...] = ()  # Service: the services (manifest names) it waits for

    @property
    def changes_anything(self) -> bool:
        return self.action not in (NO_CHANGE, REUSE) or bool(self.fields)


@dataclass(frozen=True)
class Plan:
    """Every change one commit asks for, in the order they must happen."""

    changes: tuple[Change, ...]
    revision: str | None = None  # the commit sha (or None for a plain folder)
    warnings: tuple[str, ...] = ()

    @property
    def has_changes(self) -> bool:
        return any(c.changes_anything for c in self.changes)

    @property
    def drifted(self) -> tuple[Change, ...]:
        """The changes that are drift (ECS changed outside Git), not changes in Git."""
        return tuple(c for c in self.changes if c.drift)

    def summary(self) -> dict[str, int]:
        counts = {CREATE: 0, UPDATE: 0, NO_CHANGE: 0, REGISTER: 0, REUSE: 0, DELETE: 0}
        for c in self.changes:
            counts[c.action] += 1
        return counts
