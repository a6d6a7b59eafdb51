"""Commit statuses: what the agent tells a commit about its rollout, on git notes, GitHub, GitLab or a log.

``model`` holds the value (``CommitStatus``) and the ``Publisher`` port; one module per host implements
it; ``Outbox`` retries writes with backoff so a down Git host never blocks a rollout.

The names below are imported on first use (PEP 562), so a process that publishes through one host does
not import the others' HTTP clients (``agent.status.factory`` picks the one the config names).
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "AGGREGATE": "agent.status.model",
    "MAX_DESCRIPTION": "agent.status.model",
    "STATES": "agent.status.model",
    "CommitStatus": "agent.status.model",
    "Publisher": "agent.status.model",
    "service_context": "agent.status.model",
    "GitHubApi": "agent.status.github",
    "GitHubPublisher": "agent.status.github",
    "GitLabPublisher": "agent.status.gitlab",
    "GitNotesPublisher": "agent.status.gitnotes",
    "LogPublisher": "agent.status.log",
    "Outbox": "agent.status.outbox",
}

# publisher name in the agent config -> its class
_PUBLISHERS = {
    "gitnotes": "GitNotesPublisher",
    "github": "GitHubPublisher",
    "gitlab": "GitLabPublisher",
    "log": "LogPublisher",
}

__all__ = sorted([*_HOMES, "PUBLISHERS"])


def __getattr__(name: str) -> Any:
    if name == "PUBLISHERS":
        return {key: __getattr__(cls) for key, cls in _PUBLISHERS.items()}
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
