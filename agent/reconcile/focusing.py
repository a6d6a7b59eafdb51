"""The services a commit changed, so that a tick acts on them before it reads every other service.

A commit that changes a few services (an image bump, a new service) is reconciled in two passes within
one tick. The first pass plans, decides, gates and acts on the changed services alone, together with
everything they wait for (``dependsOn``, lower waves), so the ordering gate holds them back exactly as
it would in the whole tick; it describes only those services, so its first AWS write follows the event
by the time the commit takes to load, not the time every service takes to be read. The second pass is
an ordinary tick over every service: it sees what the first pass started (a deployment in progress, a
rollout record) as it would see the previous tick's work, prunes, and reports every status.

The first pass writes what acting writes (rollout records, the revision index) and the statuses the
engines give on superseded commits (the second pass could no longer tell them); it never prunes and
never reports the commit's own statuses. There is no first pass when there is no earlier commit to
compare with (the first tick of a process), when the commit changes something services share (a
Cluster, a CapacityProvider, a DeploymentStrategy, a Window, a task definition no service runs), when
the services to plan are more than ``share`` of all, or when there are fewer than ``least`` services
(the whole tick is quick then).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from agent.manifests.model import Desired, Manifest
from agent.plan.ordering import ordering_of


def _specs(manifests: dict[str, Manifest]) -> dict[str, tuple[Any, Any]]:
    return {name: (m.spec, m.metadata) for name, m in manifests.items()}


def _shared_changed(before: Desired, after: Desired) -> bool:
    """Whether something every service may depend on differs between the two commits."""
    for kind in ("clusters", "capacity_providers", "strategies", "windows"):
        if _specs(getattr(before, kind)) != _specs(getattr(after, kind)):
            return True
    used = set(after.service_task_family.values()) | set(before.service_task_family.values())
    standalone = {f for f in (*before.task_definitions, *after.task_definitions) if f not in used}
    return any(_body(before, f) != _body(after, f) for f in standalone)


def _body(desired: Desired, family: str | None) -> Any:
    td = desired.task_definitions.get(family) if family else None
    return None if td is None else td.body


def changed_services(before: Desired, after: Desired) -> set[str]:
    """The services of ``after`` that are new, or whose manifest or task definition differs."""
    out = set()
    for name, m in after.services.items():
        was = before.services.get(name)
        family = after.service_task_family.get(name)
        if (
            was is None
            or (was.spec, was.metadata) != (m.spec, m.metadata)
            or before.service_task_family.get(name) != family
            or _body(before, family) != _body(after, family)
        ):
            out.add(name)
    return out


@dataclass
class Focus:
    """When a tick makes a first pass, and over which part of the commit."""

    least: int = 100  # services in the commit, at least
    share: float = 0.1  # the part planned first is at most this share of the services

    def part(self, before: Desired | None, after: Desired) -> Desired | None:
        """The part of ``after`` a first pass plans (the changed services and what they wait for, with
        every cluster and capacity provider), or None: no first pass (see the module docstring)."""
        total = len(after.services)
        if before is None or before is after or total < self.least or _shared_changed(before, after):
            return None
        changed = changed_services(before, after)
        if not changed:
            return None
        order = ordering_of(after)
        keep = set(changed).union(*(order.ancestors.get(name, ()) for name in changed))
        if len(keep) > max(1, int(self.share * total)):
            return None
        families = {after.service_task_family[n] for n in keep if n in after.service_task_family}
        return dataclasses.replace(
            after,
            services={n: m for n, m in after.services.items() if n in keep},
            task_definitions={f: td for f, td in after.task_definitions.items() if f in families},
            service_task_family={n: f for n, f in after.service_task_family.items() if n in keep},
        )
