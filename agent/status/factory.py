"""The publisher the agent config asks for, and the start-up check that it can authenticate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from agent.errors import AgentError
from agent.status.model import Publisher

log = structlog.get_logger("ecs_gitops.status")


def make_publisher(config: Any, clone_path: Path | str | None = None) -> Publisher:
    """The commit-status publisher of ``config.status`` (gitnotes by default, on the clone at
    ``clone_path``)."""
    from agent.status.github import GitHubPublisher
    from agent.status.gitlab import GitLabPublisher
    from agent.status.gitnotes import GitNotesPublisher
    from agent.status.log import LogPublisher

    status = config.status
    if status.publisher == "github":
        gh = status.github
        return GitHubPublisher(
            gh.repository, token_env=gh.token_env, token_file=gh.token_file, base_url=gh.api_url
        )
    if status.publisher == "gitlab":
        gl = status.gitlab
        return GitLabPublisher(
            gl.project,
            token_env=gl.token_env,
            token_file=gl.token_file,
            base_url=gl.api_url,
            auth=gl.auth_type,
            ref=config.source.branch,
        )
    if status.publisher == "log":
        return LogPublisher()
    if clone_path is None:
        raise ValueError("the gitnotes publisher needs the clone's path")
    return GitNotesPublisher(str(clone_path), remote="origin")


def check_publisher(publisher: Publisher) -> str | None:
    """Whether ``publisher`` can authenticate (GitHub: read the repository; GitLab: the project); logs
    ``status.publisher_ready`` or ``status.publisher_failed`` and returns None or why it failed. Publishers
    with nothing to check (git notes, log) pass."""
    check = getattr(publisher, "check", None)
    if check is None:
        return None
    try:
        where = check()
    except AgentError as e:
        log.error(
            "status.publisher_failed",
            publisher=publisher.name,
            reason=getattr(e, "reason", type(e).__name__),
            error=str(e),
            consequence="statuses stay in the outbox and are retried until they are written",
        )
        return str(e)
    log.info("status.publisher_ready", publisher=publisher.name, target=where)
    return None
