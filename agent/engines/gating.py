"""A service's windows, evaluated now: the Gate every engine reads, and the hold of a rolling APPLY.

Windows are pure (agent.rollout.windows); this module only finds a Service's windows in the manifests
(names of Window manifests, or inline specs) and holds a rolling-engine APPLY while they say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agent.manifests.model import Desired, Manifest
from agent.rollout import windows
from agent.rollout.decisions import PENDING, Decision


def windows_of(manifest: Manifest, desired: Desired) -> list[windows.Window]:
    """The service's windows: names of Window manifests, or inline window specs (with a ``name``)."""
    out = []
    for i, item in enumerate(manifest.spec.get("windows") or ()):
        if isinstance(item, Mapping):
            out.append(windows.Window.from_spec(str(item.get("name") or f"window-{i}"), item))
        elif str(item) in desired.windows:
            out.append(windows.Window.from_spec(str(item), desired.windows[str(item)].spec))
    return out


def hold_for_windows(
    decision: Decision, record: Any, gate: windows.Gate | None, creating: bool = False
) -> Decision:
    """A rolling-engine decision that would APPLY, held while a freeze window is open or, when the service
    lists maintenance windows, until one opens (pending; woken when the window changes). (The native
    engine starts its rollout at once and holds production traffic at its PAUSE hook instead:
    agent.rollout.native.)

    Creating a service that does not exist yet waits for no maintenance window (no live traffic to
    protect), but a freeze holds it like every other change.
    """
    if gate is None:
        return decision
    if gate.frozen_by is not None:
        return Decision((), record, PENDING, gate.frozen_text(), gate.frozen_until)
    if not gate.traffic_may_move and not creating:
        return Decision((), record, PENDING, gate.waiting_text(), gate.opens_at)
    return decision


def gate_of(manifest: Manifest, desired: Desired, now: datetime) -> windows.Gate | None:
    found = windows_of(manifest, desired)
    return windows.gate(found, now) if found else None
