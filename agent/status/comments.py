"""The plan of a proposed commit as one comment on its pull request (GitHub) or merge request (GitLab).

One comment per pull request, found again by a hidden marker (``<!-- ecs-gitops-plan -->``) at the start
of its body: a new head's plan edits it in place (GitHub ``PATCH /repos/{owner}/{repo}/issues/comments/
{id}``, GitLab ``PUT /projects/:id/merge_requests/:iid/notes/:note_id``), and a plan equal to what it
already says is not written at all. Only when no comment carries the marker is one created (``POST
.../issues/{number}/comments``, ``POST .../merge_requests/:iid/notes``). Comments are listed 100 per page.

Failures are typed like the status publishers' (``agent.status.http``): transient for 5xx, rate limits and
timeouts, permanent for other 4xx (a token without the permission to comment, say).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from agent.status.github import GitHubApi
from agent.status.gitlab import GitLabPublisher

MARKER = "<!-- ecs-gitops-plan -->"
MAX_BODY = 60_000  # GitHub refuses comments over 65,536 characters; GitLab takes more
PER_PAGE = 100
MAX_PAGES = 50
_REQUEST_REF = re.compile(r"^refs/(?:pull|merge-requests)/(\d+)/(?:head|merge)$")

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


def request_number(ref: str) -> int | None:
    """The number of a pull (``refs/pull/7/head``) or merge request (``refs/merge-requests/7/head``)."""
    match = _REQUEST_REF.match(ref)
    return int(match.group(1)) if match else None


def fit(body: str, limit: int = MAX_BODY) -> str:
    """``body`` within ``limit`` characters: whole lines kept, the cut said, a code fence closed."""
    if len(body) <= limit:
        return body
    note = "\n… (cut: the whole plan is in `ecs-gitops plan --ref <sha>`)\n```\n"
    kept = body[: limit - len(note)]
    return kept[: kept.rfind("\n") + 1] + note


class PlanComments(Protocol):
    """Writes the one plan comment of a pull or merge request; returns created, updated or unchanged."""

    def upsert(self, number: int, body: str) -> str: ...


class GitHubPlanComments:
    """Plan comments on one GitHub repository, through the issues comments API (PRs are issues)."""

    def __init__(self, api: GitHubApi, repository: str) -> None:
        owner, _, repo = repository.partition("/")
        self.api = api
        self._prefix = f"/repos/{owner}/{repo}"

    def find(self, number: int) -> dict[str, Any] | None:
        """The comment carrying the marker, if any."""
        return _marked(self.api.call, f"{self._prefix}/issues/{number}/comments?per_page={PER_PAGE}")

    def create(self, number: int, body: str) -> None:
        self.api.call("POST", f"{self._prefix}/issues/{number}/comments", {"body": body})

    def update(self, comment_id: int, body: str) -> None:
        self.api.call("PATCH", f"{self._prefix}/issues/comments/{comment_id}", {"body": body})

    def upsert(self, number: int, body: str) -> str:
        body = fit(body)
        existing = self.find(number)
        if existing is None:
            self.create(number, body)
            return CREATED
        if existing.get("body") == body:
            return UNCHANGED
        self.update(int(existing["id"]), body)
        return UPDATED


class GitLabPlanComments:
    """Plan comments (notes) on the merge requests of one GitLab project."""

    def __init__(self, project: GitLabPublisher) -> None:
        self.project = project

    def find(self, number: int) -> dict[str, Any] | None:
        """The note carrying the marker, if any."""
        return _marked(self.project.call, f"/merge_requests/{number}/notes?per_page={PER_PAGE}&sort=asc")

    def upsert(self, number: int, body: str) -> str:
        body = fit(body)
        existing = self.find(number)
        if existing is None:
            self.project.call("POST", f"/merge_requests/{number}/notes", {"body": body})
            return CREATED
        if existing.get("body") == body:
            return UNCHANGED
        self.project.call("PUT", f"/merge_requests/{number}/notes/{int(existing['id'])}", {"body": body})
        return UPDATED


def make_comments(config: Any) -> PlanComments | None:
    """The plan commenter the config asks for (``status.planComments`` with github or gitlab), or None."""
    status = config.status
    if not status.plan_comments:
        return None
    if status.publisher == "github":
        from agent.status import http

        gh = status.github
        token = http.Token(env=gh.token_env, file=gh.token_file)
        return GitHubPlanComments(GitHubApi(token, gh.api_url), gh.repository)
    if status.publisher == "gitlab":
        from agent.status.factory import make_publisher

        project = make_publisher(config)
        assert isinstance(project, GitLabPublisher)
        return GitLabPlanComments(project)
    return None


def _marked(call: Any, path: str) -> dict[str, Any] | None:
    """The first item of a paged comment list (``path`` + ``&page=N``) whose body starts with the marker."""
    for page in range(1, MAX_PAGES + 1):
        resp = call("GET", f"{path}&page={page}")
        items = resp.body if isinstance(resp.body, list) else []
        for item in items:
            if isinstance(item, dict) and str(item.get("body") or "").startswith(MARKER):
                return item
        if len(items) < PER_PAGE:
            return None
    return None
