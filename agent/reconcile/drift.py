"""Drift: a service whose content already rolled out but no longer matches ECS.

Such a service is corrected (``selfHeal``: its rollout goes ahead, saying so) or reported (a failure
status, a log line, a metric; nothing changes in ECS). Which services have settled is read from their
rollout records: the record says its content rolled out, and Git still asks for that content.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import structlog

from agent.manifests.model import Desired, Manifest
from agent.plan.drift import describe as describe_drift
from agent.plan.model import DRIFT_HEAL
from agent.reconcile.fingerprints import fingerprint, rollout_record, service_key
from agent.reconcile.results import PlanResult
from agent.rollout import rolling
from agent.rollout.decisions import FAILURE, Decision
from agent.status.model import truncate

log = structlog.get_logger()


def settled(desired: Desired, records: dict[str, Any], config: Any) -> dict[str, bool]:
    """Services whose desired content already rolled out (their ``records``, by manifest name, say so):
    Service change name -> whether it self-heals. What such a service's plan still changes is drift."""
    out = {}
    for name, manifest in desired.services.items():
        record = rollout_record(records.get(name))
        if record is None or record.result != rolling.SUCCEEDED:
            continue
        if record.fingerprint == fingerprint(desired, manifest):
            out[service_key(manifest)] = self_heal(manifest, config)
    return out


def self_heal(manifest: Manifest, config: Any) -> bool:
    """The Service's own ``selfHeal``, else the agent config's ``sync.selfHeal``."""
    own = manifest.spec.get("selfHeal")
    if isinstance(own, bool):
        return own
    return bool(getattr(getattr(config, "sync", None), "self_heal", False))


def apply_drift(
    result: PlanResult, decisions: dict[str, Decision]
) -> tuple[dict[str, Decision], set[str], set[str]]:
    """Drifted services: healed (their rollout goes ahead, saying so) or reported (failure, no change).

    Returns the decisions, the drifted services ("cluster/service") and the manifest names of those
    only reported (they still run what Git asks for, so they hold no dependant back).
    """
    names = {service_key(m): name for name, m in result.desired.services.items()}
    drifted: set[str] = set()
    reported: set[str] = set()
    for change in result.plan.drifted:
        name = names.get(change.name)
        if name is None or name not in decisions:
            continue
        drifted.add(change.name)
        words = describe_drift(change)
        heal = change.drift == DRIFT_HEAL
        log.warning("drift.detected", service=change.name, drift=words, action="heal" if heal else "report")
        if heal and decisions[name].actions:  # APPLY, or the task-set engine's UpdateService
            decisions[name] = replace(decisions[name], description=truncate(f"healing drift: {words}"))
        elif not heal:
            description = truncate(f"drifted from Git: {words}; selfHeal off")
            decisions[name] = Decision((), None, FAILURE, description)
            reported.add(name)
    return decisions, drifted, reported
