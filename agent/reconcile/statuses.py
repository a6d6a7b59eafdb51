"""From decisions to commit statuses: one per service, one aggregate per commit, written once per change.

Statuses describe the decisions, made before their actions ran; the next tick observes the result.
Statuses on other commits (the one a newer commit superseded) come from ``Decision.other_commits``.
A status is queued in the outbox (kept in the store) only when it differs from what was last written for
that commit and context, so a steady service costs no write.

Writes are budgeted per (commit, context), because GitHub keeps at most 1,000 statuses per sha and context
and refuses the 1,001st (the final one) with 422. A change of state, or of phase (the description with its
numbers taken out: "canary 10%: baking" to "canary 50%: baking", "waiting for window" to "baking"), is
written at once. A change of progress only (a countdown, a running count) is written at most every
``PROGRESS_EVERY`` seconds, a spacing that grows by that much after every ``SPACING_STEP`` writes: a
day-long bake costs about 150 writes. Past ``MAX_WRITES - RESERVE`` writes only a state change is written,
so the final status always lands.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from agent.aws.accounts import account_of_service
from agent.manifests.model import Desired, Manifest
from agent.rollout.decisions import ERROR, FAILURE, PENDING, SUCCESS, Decision
from agent.status.model import AGGREGATE, MAX_DESCRIPTION, CommitStatus, service_context, truncate

MAX_WRITES = 1000  # GitHub's limit per sha and context
RESERVE = 20  # writes kept for state changes (the final status) once the budget is nearly spent
PROGRESS_EVERY = 300.0  # seconds between progress-only writes, at first
SPACING_STEP = 50  # after each this many writes the spacing grows by PROGRESS_EVERY
_NUMBERS = re.compile(r"\d+(?:[.,]\d+)?")
_COUNTDOWN = re.compile(r"(?:\d+\s*[dhms]\s*)+(?:left|remaining|ago)?")


def phase_of(description: str) -> str:
    """The description without what a countdown or a count changes: "baking, 4m 23s left" and
    "baking, 3m 10s left" are one phase; "canary 10%" and "canary 50%" are two (a percent is a phase)."""
    text = _COUNTDOWN.sub("", description)
    return _NUMBERS.sub(lambda m: m.group(0) if text[m.end() : m.end() + 1] == "%" else "#", text)


def due(last: dict[str, Any] | None, state: str, description: str, now: datetime) -> bool:
    """Whether a status (``state``, ``description``) is written now, given what was last written for its
    commit and context (``last``: state, description, writes, at)."""
    if last is None:
        return True
    if last.get("state") == state and last.get("description") == description:
        return False
    writes = int(last.get("writes") or 0)
    if last.get("state") != state:
        return writes < MAX_WRITES
    if writes >= MAX_WRITES - RESERVE:
        return False
    if phase_of(str(last.get("description") or "")) != phase_of(description):
        return True
    try:
        at = datetime.fromisoformat(str(last.get("at")))
    except ValueError:
        return True
    spacing = PROGRESS_EVERY * (1 + writes // SPACING_STEP)
    return now - at >= timedelta(seconds=spacing)


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
        """Queue the statuses that are ``due`` (changed, within the budget of their commit and context);
        flush."""
        now = self.clock()
        statuses = list(statuses)
        keys = [f"status/{status.sha}/{status.context}" for status in statuses]
        lasts = self.store.get_many(keys) if self.store is not None else {}  # one read for them all
        written: dict[str, dict[str, Any]] = {}
        queued = []
        for key, status in zip(keys, statuses, strict=True):
            last = written.get(key, lasts.get(key))  # a context twice in one report: the second sees it
            if not due(last, status.state, status.description, now):
                continue
            written[key] = {
                "state": status.state,
                "description": status.description,
                "writes": int((last or {}).get("writes") or 0) + 1,
                "at": now.isoformat(),
            }
            queued.append(status.stamped(now))
        # The outbox keeps the statuses (in the store) before they count as written: a crash in between
        # sends them twice, never zero times. Each is one batch (one commit) for the whole tick.
        if self.outbox is not None and queued:
            self.outbox.put_many(queued)
        if self.store is not None and written:
            with self.store.batch():
                for key, record in written.items():
                    self.store.put(key, record)
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
