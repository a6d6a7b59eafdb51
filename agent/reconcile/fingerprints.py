"""What identifies one service's desired content, and where its rollout record is kept.

A rollout record stores the fingerprint of the content it rolled out; the next tick compares it with the
fingerprint Git asks for now, so a service whose content already rolled out is "settled" (what its plan
still changes is drift), and any other is a new rollout.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from agent.manifests.model import Desired, Manifest
from agent.plan.services import resolve_strategy
from agent.plan.taskdefs import file_hash
from agent.rollout.decisions import RolloutRecord

# Service spec fields that are not part of what ECS runs: they only tell the agent what to do.
AGENT_ONLY_FIELDS = ("taskDefinition", "dependsOn", "wave", "selfHeal")


def fingerprint(desired: Desired, manifest: Manifest) -> str:
    """Identifies what Git asks of one service: its spec, its strategy and its task-definition content.

    The fields that only tell the agent what to do (ordering, selfHeal) are left out: changing them
    changes nothing in ECS, so a drifted service stays drifted, not "changed in Git". Kept in
    ``desired.derived``: a tick asks twice, and the next tick at the same commit asks again.
    """
    key = ("fingerprint", manifest.name)
    kept = desired.derived.get(key)
    if kept is not None and kept[0] is manifest:
        return str(kept[1])
    family = desired.service_task_family.get(manifest.name)
    td = desired.task_definitions.get(family) if family else None
    strategy = resolve_strategy(manifest.spec.get("strategy"), desired.strategies)
    spec = {k: v for k, v in manifest.spec.items() if k not in AGENT_ONLY_FIELDS}
    text = json.dumps([spec, strategy, file_hash(td) if td else None], sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    desired.derived[key] = (manifest, digest)
    return digest


def service_key(manifest: Manifest) -> str:
    """``cluster/service`` of a Service manifest: its Change's name, its rollout record's key."""
    return f"{manifest.spec['cluster']}/{manifest.spec.get('serviceName', manifest.name)}"


def rollout_key(manifest: Manifest) -> str:
    return f"rollout/{service_key(manifest)}"


def rollout_records(store: Any, desired: Desired) -> dict[str, dict[str, Any]]:
    """The stored rollout record of each service of ``desired`` that has one, by manifest name: read once
    per plan (``StateStore.get_many``), for deciding and for telling which services have settled."""
    if store is None:
        return {}
    keys = {name: rollout_key(m) for name, m in desired.services.items()}
    found = store.get_many(keys.values())
    return {name: found[key] for name, key in keys.items() if key in found}


def rollout_record(data: dict[str, Any] | None) -> RolloutRecord | None:
    """A stored rollout record as the rolling engine reads it (keys it does not know dropped)."""
    return RolloutRecord.from_json(data)
