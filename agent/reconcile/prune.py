"""Prune (``sync.prune``): managed services no manifest names any more are deleted, last.

Prune goes last, once everything else of the commit rolled out in every account, so that a renamed
service keeps serving until its successor runs. Orphans are looked for only in the clusters the manifests
name or the agent has rolled out to (its rollout records say so), within ``clusters.allow``.
"""

from __future__ import annotations

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

    def prune(
        self,
        result: PlanResult,
        executor: Executor,
        decisions: dict[str, Decision],
        errors: dict[str, str],
        running: set[str],
        sha: str,
    ) -> dict[str, CommitStatus]:
        """Delete the services ``result`` (one account's plan, or the commit's) prunes once everything
        else of this commit rolled out, in every account. Returns a status per pruned service: pending
        while the rollout goes on, failure when it failed."""
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
