"""What a commit status is, and the port every publisher implements.

A status is one (commit, context) fact: ``ecs-gitops/<cluster>/<service>`` per service plus the
aggregate ``ecs-gitops``. States are GitHub's four: ``pending`` (planned or rolling out; the
description says what it waits for), ``success``, ``failure`` (invalid manifests, a failed or
rolled-back rollout) and ``error`` (the agent itself failed). Hosts with other vocabularies map them
at their edge (see ``gitlab.py``).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from agent.errors import printable

STATES = ("pending", "success", "failure", "error")
AGGREGATE = "ecs-gitops"
MAX_DESCRIPTION = 140  # GitHub's limit; GitLab and git notes follow it so every host shows the same text.


def service_context(cluster: str, service: str) -> str:
    """The context of one service's status: ``ecs-gitops/<cluster>/<service>``."""
    return f"{AGGREGATE}/{cluster}/{service}"


def render_target_url(template: str, sha: str, context: str) -> str:
    """``status.targetUrl`` filled in: ``{sha}``, ``{context}`` (``ecs-gitops/prod/web``), ``{cluster}``
    and ``{service}`` (empty for the aggregate and the plan status), each URL-quoted (``/`` kept)."""
    parts = context.split("/")
    cluster, service = (parts[1], parts[2]) if len(parts) == 3 and parts[0] == AGGREGATE else ("", "")
    values = {"sha": sha, "context": context, "cluster": cluster, "service": service}
    return template.format(**{k: urllib.parse.quote(v, safe="/") for k, v in values.items()})


def truncate(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Cut ``text`` to ``limit`` characters, ending with "…" when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso_utc(when: datetime | float | None = None) -> str:
    """``2024-05-01T12:00:00Z`` for a datetime, an epoch timestamp, or now."""
    if when is None:
        when = datetime.now(UTC)
    elif isinstance(when, int | float):
        when = datetime.fromtimestamp(when, UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CommitStatus:
    """One status of one commit, as every publisher receives it."""

    sha: str
    context: str
    state: str  # "pending" | "success" | "failure" | "error"
    description: str
    target_url: str | None = None
    updated_at: str | None = None  # ISO-8601 UTC; a publisher sets it when None
    # The git ref the commit was planned or deployed from (``main``, ``refs/merge-requests/7/head``); None:
    # the publisher's own default (the tracked branch). GitLab needs it; the other hosts ignore it.
    ref: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {self.state!r}")
        if not self.sha or not self.context:
            raise ValueError("a commit status needs a sha and a context")
        # One line of valid UTF-8 (a file name that is not UTF-8 shows its bytes escaped), at most 140.
        object.__setattr__(self, "description", truncate(printable(self.description or "")))

    def stamped(self, when: datetime | float | None = None) -> CommitStatus:
        """This status with ``updated_at`` set (to ``when``, default now) unless it already is."""
        return self if self.updated_at else replace(self, updated_at=iso_utc(when))

    def as_entry(self) -> dict[str, str | None]:
        """The host-neutral shape ``read`` returns and git notes store for one context."""
        return {
            "state": self.state,
            "description": self.description,
            "updatedAt": self.updated_at,
            "targetUrl": self.target_url,
        }


@runtime_checkable
class Publisher(Protocol):
    """Writes and reads commit statuses on one Git host.

    ``publish`` raises ``TransientError`` for what may pass (5xx, timeouts, a remote that did not
    answer) and ``PermanentError`` for what retrying won't fix (4xx: bad token, unknown commit).
    ``read`` returns the latest status per context: ``{context: {"state", "description",
    "updatedAt", "targetUrl"}}``.
    """

    name: str

    def publish(self, status: CommitStatus) -> None: ...

    def read(self, sha: str) -> dict[str, dict]: ...
