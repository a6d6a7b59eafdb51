"""Commit statuses: what the agent tells a commit about its rollout, on git notes, GitHub, GitLab or a log.

``model`` holds the value (``CommitStatus``) and the ``Publisher`` port; one module per host implements
it; ``Outbox`` retries writes with backoff so a down Git host never blocks a rollout.
"""

from agent.status.github import GitHubApi, GitHubPublisher
from agent.status.gitlab import GitLabPublisher
from agent.status.gitnotes import GitNotesPublisher
from agent.status.log import LogPublisher
from agent.status.model import (
    AGGREGATE,
    MAX_DESCRIPTION,
    STATES,
    CommitStatus,
    Publisher,
    service_context,
)
from agent.status.outbox import Outbox

PUBLISHERS: dict[str, type] = {
    "gitnotes": GitNotesPublisher,
    "github": GitHubPublisher,
    "gitlab": GitLabPublisher,
    "log": LogPublisher,
}

__all__ = [
    "AGGREGATE",
    "MAX_DESCRIPTION",
    "PUBLISHERS",
    "STATES",
    "CommitStatus",
    "GitHubApi",
    "GitHubPublisher",
    "GitLabPublisher",
    "GitNotesPublisher",
    "LogPublisher",
    "Outbox",
    "Publisher",
    "service_context",
]
