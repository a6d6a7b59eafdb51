"""Prune (``sync.prune``): managed services no manifest names any more are deleted, last.

Prune goes last, once everything else of the commit rolled out in every account, so that a renamed
service keeps serving until its successor runs. Orphans are looked for only in the clusters the manifests
name or the agent has rolled out to (its rollout records say so), within ``clusters.allow``.

One commit may delete at most ``sync.pruneLimit`` services: ``services`` and ``percent`` (rounded up) of
the services it manages, whichever is fewer. A commit over it deletes nothing and fails, saying how to
allow it: the trailer ``ecs-gitops-allow-prune: N`` in its message, N at least the number to delete.
"""

from __future__ import annotations

import math
import re
from typing import Any

import structlog

from agent.aws.accounts import Lane
from agent.aws.errors import AwsPermanentError
from agent.aws.executing import Executor, change_key
from agent.aws.observing import Observer
from agent.manifests.model import Desired
from agent.plan.model import DELETE
from agent.reconcile.results import PlanResult
from agent.reconcile.statuses import in_account
from agent.rollout.decisions import ERROR, FAILURE, PENDING, SUCCESS, Decision
from agent.status.model import AGGREGATE, CommitStatus, service_context, truncate

log = structlog.get_logger()

TRAILER = "ecs-gitops-allow-prune"
_TRAILER = re.compile(rf"^{TRAILER}:[ \t]*([0-9]{{1,9}})[ \t]*$", re.IGNORECASE | re.MULTILINE)


def allowed_by_trailer(message: str | None) -> int | None:
    """N of the ``ecs-gitops-allow-prune: N`` trailer (the message's last paragraph), or None."""
    if not message:
        return None
    last = message.strip().replace("\r\n", "\n").split("\n\n")[-1]
    found = _TRAILER.findall(last)
    return int(found[-1]) if found else None


def prune_limit(config: Any, managed: int) -> int:
    """How many services one commit that manages ``managed`` may delete without a trailer."""
    limit = getattr(getattr(config, "sync", None), "prune_limit", None)
    services = int(getattr(limit, "services", 5))
    percent = float(getattr(limit, "percent", 10))
    return min(services, math.ceil(managed * percent / 100))


class Pruner:
    """Finds the services to prune and deletes them once the commit rolled out."""

    def __init__(self, config: Any, store: Any) -> None:
        self.config = config
        self.store = store

    @property
    def pruning(self) -> bool:
        return bool(getattr(getattr(self.config, "sync", None), "prune", False))

    def recorded_clusters(self) -> set[str]:
        """The clusters the agent has rolled out to (its rollout records say so)."""
        if self.store is None:
            return set()
        return {key.split("/")[1] for key, _ in self.store.items("rollout/")}

    def orphans(
        self, desired: Desired, observer: Observer, lane: Lane | None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """With ``sync.prune``: the managed services no manifest names, in every cluster the manifests
        name or the agent has rolled out to (within ``clusters.allow``); otherwise none, at no cost.

        In an account's ``lane`` (``accounts``), only that account's clusters are looked at, with its
        clients: a cluster the agent rolled out to that no account lists any more is left alone.
        """
        if not self.pruning:
            return {}
        clusters = {str(m.spec["cluster"]) for m in desired.services.values()}
        clusters |= {str(m.spec.get("clusterName") or m.name) for m in desired.clusters.values()}
        recorded = self.recorded_clusters()
        if lane is not None and lane.account is not None:
            recorded &= set(lane.account.clusters)
        clusters |= recorded
        allowed = getattr(self.config, "clusters", None)
        clusters = {c for c in clusters if allowed is None or allowed.allows(c)}
        known = {
            (str(m.spec["cluster"]), str(m.spec.get("serviceName", n))) for n, m in desired.services.items()
        }
        return observer.orphans(clusters, known)

    def refusal(self, parts: list[PlanResult], message: str | None) -> str | None:
        """Why this commit may not prune (over ``sync.pruneLimit`` without a trailer allowing as many),
        or None. ``parts`` are the commit's plans (one per account), ``message`` its commit message."""
        deletes = sum(1 for part in parts for c in part.plan.changes if c.action == DELETE)
        if not deletes:
            return None
        managed = deletes + sum(len(part.desired.services) for part in parts)
        limit = prune_limit(self.config, managed)
        granted = allowed_by_trailer(message)
        if deletes <= limit or (granted is not None and deletes <= granted):
            return None
        log.warning("prune.refused", deletes=deletes, managed=managed, limit=limit, trailer=granted)
        return (
            f"{deletes} services to delete, over sync.pruneLimit ({limit} of {managed}); "
            f"allow with the commit trailer '{TRAILER}: {deletes}'"
        )

    def prune(
        self,
        result: PlanResult,
        executor: Executor,
        decisions: dict[str, Decision],
        errors: dict[str, str],
        running: set[str],
        sha: str,
        refused: str | None = None,
    ) -> dict[str, CommitStatus]:
        """Delete the services ``result`` (one account's plan, or the commit's) prunes once everything
        else of this commit rolled out, in every account. Returns a status per pruned service: pending
        while the rollout goes on, failure when it failed or when ``refused`` (the commit is over
        ``sync.pruneLimit``: nothing is deleted)."""
        deletes = [c for c in result.plan.changes if c.action == DELETE]
        if not deletes:
            return {}
        failed = sorted(n for n, d in decisions.items() if d.state in (FAILURE, ERROR) and n not in running)
        rolling_out = sorted(n for n, d in decisions.items() if d.state == PENDING)
        account = result.lane.account if result.lane is not None else None

        def status(context: str, state: str, description: str) -> CommitStatus:
            description = truncate(description)
            if account is not None:
                description = in_account(account, description)
            return CommitStatus(sha, context, state, description)

        out = {}
        for change in deletes:
            cluster, service = change.name.split("/", 1)
            context = service_context(cluster, service)
            if refused:
                out[context] = status(context, FAILURE, f"not deleted: {refused}")
                continue
            if errors or failed:
                why = errors.get(AGGREGATE) or f"{', '.join(failed)} failed"
                out[context] = status(context, FAILURE, f"not deleted: this commit did not roll out ({why})")
                continue
            if rolling_out:
                out[context] = status(
                    context, PENDING, "to be deleted (no longer in Git) once the rollout finishes"
                )
                continue
            try:
                executor.execute(result.plan, only=[change_key(change)])
            except AwsPermanentError as e:
                out[context] = status(context, FAILURE, f"delete failed: {e}")
                continue
            log.warning("service.pruned", service=change.name, account=account.label if account else None)
            if self.store is not None:
                self.store.delete(f"rollout/{cluster}/{service}")
            out[context] = status(context, SUCCESS, "deleted: no longer in Git (sync.prune)")
        return out
