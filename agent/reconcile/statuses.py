"""From decisions to commit statuses: one per service, one aggregate per commit, written once per change.

Statuses describe the decisions, made before their actions ran; the next tick observes the result.
Statuses on other commits (the one a newer commit superseded) come from ``Decision.other_commits``.
A status is queued in the outbox (kept in the store) only when it differs from what was last written for
that commit and context, so a steady service costs no write.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any

from agent.aws.accounts import account_of_service
from agent.manifests.model import Desired, Manifest
from agent.rollout.decisions import ERROR, FAILURE, PENDING, SUCCESS, Decision
from agent.status.model import AGGREGATE, MAX_DESCRIPTION, CommitStatus, service_context, truncate


class Reporter:
    """Builds the statuses of a tick and writes those that changed."""

    def __init__(self, store: Any, outbox: Any, clock: Callable[[], datetime], accounts: list[Any]) -> None:
        self.store = store
        self.outbox = outbox
        self.clock = clock
        self.accounts = accounts

    def statuses(
        self,
        desired: Desired,
        decisions: dict[str, Decision],
        errors: dict[str, str],
        sha: str,
        drifted: Collection[str] = (),
    ) -> dict[str, CommitStatus]:
        """A status per service, and the commit's aggregate."""
        out = {}
        for name, d in decisions.items():
            m = desired.services[name]
            ctx = service_context(m.spec["cluster"], m.spec.get("serviceName", name))
            out[ctx] = CommitStatus(sha, ctx, d.state, self.where(m, desired, d.description))
        out[AGGREGATE] = aggregate(sha, decisions, errors, drifted)
        return out

    def other_statuses(
        self, desired: Desired, decisions: dict[str, Decision]
    ) -> dict[tuple[str, str], CommitStatus]:
        """Statuses the engines asked for on other commits (a superseded one), with an aggregate for each."""
        out: dict[tuple[str, str], CommitStatus] = {}
        by_sha: dict[str, dict[str, Decision]] = {}
        for name, decision in sorted(decisions.items()):
            m = desired.services[name]
            ctx = service_context(m.spec["cluster"], m.spec.get("serviceName", name))
            for sha, state, description in decision.other_commits:
                text = self.where(m, desired, truncate(description))
                out[(sha, ctx)] = CommitStatus(sha, ctx, state, text)
                by_sha.setdefault(sha, {})[name] = Decision((), None, state, description)
        for sha, theirs in by_sha.items():
            out[(sha, AGGREGATE)] = aggregate(sha, theirs, {})
        return out

    def where(self, manifest: Manifest, desired: Desired, description: str) -> str:
        """``description`` naming the account the service is in, with ``accounts``: e.g. "web:5 running
        4/4 [prod 111111111111 eu-west-1]"."""
        account = account_of_service(manifest, desired, self.accounts)
        if account is None:
            return description
        return in_account(account, description)

    def report(self, statuses: Iterable[CommitStatus]) -> None:
        """Queue statuses that differ from what was last written for that commit and context; flush."""
        now = self.clock()
        for status in statuses:
            status = status.stamped(now)
            key = f"status/{status.sha}/{status.context}"
            last = self.store.get(key) if self.store is not None else None
            current = {"state": status.state, "description": status.description}
            if last == current:
                continue
            # The outbox keeps the status (in the store) before it counts as written: a crash in between
            # sends it twice, never zero times.
            if self.outbox is not None:
                self.outbox.put(status)
            if self.store is not None:
                self.store.put(key, current)
        if self.outbox is not None:
            self.outbox.flush()


def in_account(account: Any, description: str) -> str:
    where = " ".join(filter(None, (account.name, account.account_id, account.region)))
    return truncate(description, MAX_DESCRIPTION - len(where) - 3) + f" [{where}]"


def aggregate(
    sha: str, decisions: dict[str, Decision], errors: dict[str, str], drifted: Collection[str] = ()
) -> CommitStatus:
    """The commit's status: error, failure (a service failed or drifted), pending, or success."""
    if AGGREGATE in errors:
        return CommitStatus(sha, AGGREGATE, ERROR, errors[AGGREGATE])
    by_state: dict[str, list[str]] = {}
    for name, d in sorted(decisions.items()):
        by_state.setdefault("drifted" if name in drifted else d.state, []).append(name)
    if FAILURE not in by_state and "drifted" in by_state:
        names = by_state["drifted"]
        return CommitStatus(
            sha, AGGREGATE, FAILURE, truncate(f"{len(names)} drifted from Git: {', '.join(names)}")
        )
    if FAILURE in by_state:
        names = by_state[FAILURE]
        return CommitStatus(sha, AGGREGATE, FAILURE, truncate(f"{len(names)} failed: {', '.join(names)}"))
    if PENDING in by_state:
        names = by_state[PENDING]
        return CommitStatus(
            sha, AGGREGATE, PENDING, truncate(f"rolling out {len(names)}: {', '.join(names)}")
        )
    return CommitStatus(sha, AGGREGATE, SUCCESS, f"{len(decisions)} services deployed")


def outcome(decisions: dict[str, Decision], errors: dict[str, str], drifted: Collection[str] = ()) -> str:
    """The tick's outcome word (TickResult.outcome)."""
    states = {d.state for n, d in decisions.items() if n not in drifted}
    if errors or FAILURE in states:
        return "failed"
    if drifted:
        return "drifted"
    if any(d.actions for d in decisions.values()):
        return "applied"
    return "rolling" if PENDING in states else "unchanged"
