"""Commit statuses on GitLab through the REST API v4.

``POST {base}/api/v4/projects/:id/statuses/:sha`` with ``state``, ``name`` (our context),
``description`` and ``target_url``; header ``PRIVATE-TOKEN``. ``:id`` is the numeric project id or the
URL-encoded path (``group%2Fproject``).

GitLab has its own states. Ours map one way, simply: pending→pending, success→success,
failure→failed, error→failed (GitLab has no "error"; the description tells them apart). Reading
back maps created/pending/running→pending, success→success, failed→failure, canceled/skipped→error.

GitLab answers 400 "Cannot transition status via :x from :y" when a status is posted again in the
state it already has; the status is then already what we wanted, so that answer counts as success.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from agent.status import http
from agent.status.model import CommitStatus

DEFAULT_BASE = "https://gitlab.com"
TO_GITLAB = {"pending": "pending", "success": "success", "failure": "failed", "error": "failed"}
FROM_GITLAB = {
    "created": "pending",
    "pending": "pending",
    "running": "pending",
    "success": "success",
    "failed": "failure",
    "canceled": "error",
    "skipped": "error",
}


class GitLabPublisher:
    """Commit statuses on one GitLab project."""

    name = "gitlab"

    def __init__(
        self,
        project: str | int,
        *,
        token_env: str | None = None,
        token_file: str | None = None,
        token: str | None = None,
        base_url: str = DEFAULT_BASE,
        timeout: float = http.DEFAULT_TIMEOUT,
    ) -> None:
        self.project = str(project)
        base = base_url.rstrip("/")
        self.base_url = base.removesuffix("/api/v4")
        self.timeout = timeout
        self._token = http.Token(env=token_env, file=token_file, value=token)
        project_id = self.project if "%" in self.project else urllib.parse.quote(self.project, safe="")
        self._prefix = f"{self.base_url}/api/v4/projects/{project_id}"

    def __repr__(self) -> str:
        return f"GitLabPublisher({self.project!r}, base_url={self.base_url!r})"

    def _call(self, method: str, path: str, body: Any = None) -> http.Response:
        token = self._token.get()
        headers = {"PRIVATE-TOKEN": token, "Accept": "application/json", "User-Agent": "ecs-gitops"}
        return http.request(
            method, self._prefix + path, headers=headers, body=body, timeout=self.timeout, secret=token
        )

    def call(self, method: str, path: str, body: Any = None) -> http.Response:
        """An authenticated request under the project (``/merge_requests/7/notes``): plan comments use it."""
        return self._call(method, path, body)

    def publish(self, status: CommitStatus) -> None:
        body: dict[str, Any] = {
            "state": TO_GITLAB[status.state],
            "name": status.context,
            "description": status.description,
        }
        if status.target_url:
            body["target_url"] = status.target_url
        try:
            self._call("POST", f"/statuses/{_q(status.sha)}", body)
        except http.HttpPermanentError as e:
            if e.status == 400 and "cannot transition status" in e.detail.lower():
                return  # already in this state
            raise

    def read(self, sha: str) -> dict[str, dict]:
        resp = self._call("GET", f"/repository/commits/{_q(sha)}/statuses?per_page=100")
        out: dict[str, dict] = {}
        for item in resp.body if isinstance(resp.body, list) else []:
            context = item.get("name") or "default"
            if context in out:
                continue
            out[context] = {
                "state": FROM_GITLAB.get(item.get("status", ""), "error"),
                "description": item.get("description") or "",
                "updatedAt": item.get("finished_at") or item.get("started_at") or item.get("created_at"),
                "targetUrl": item.get("target_url"),
            }
        return out


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")
