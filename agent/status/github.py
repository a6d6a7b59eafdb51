"""Commit statuses on GitHub or GitHub Enterprise through the REST API.

``POST {api}/repos/{owner}/{repo}/statuses/{sha}`` writes one; ``GET .../commits/{ref}/status`` (the
combined status: the latest per context, paginated) reads them back. GitHub keeps at most 1,000 statuses
per sha and context and refuses more with 422: the reporter budgets its writes (agent/reconcile/statuses.py).
``check`` reads the repository, a cheap authenticated GET the daemon makes at start. ``GitHubApi`` is the
thin authenticated client; PR comments (plan previews) reuse it. The request shapes are checked
against GitHub's own OpenAPI description in ``tests/status/test_github_contract.py``.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from agent.status import http
from agent.status.model import CommitStatus

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100


class GitHubApi:
    """Authenticated JSON requests to one GitHub (or GHE: ``https://ghe.example.com/api/v3``) API."""

    def __init__(self, token: http.Token, base_url: str = DEFAULT_API, timeout: float = http.DEFAULT_TIMEOUT):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token

    def __repr__(self) -> str:
        return f"GitHubApi({self.base_url!r})"

    def call(self, method: str, path: str, body: Any = None) -> http.Response:
        """``method`` ``{base_url}{path}`` with GitHub's headers; raises Transient/PermanentError."""
        token = self._token.get()
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {token}",
            "User-Agent": "ecs-gitops",
        }
        return http.request(
            method, self.base_url + path, headers=headers, body=body, timeout=self.timeout, secret=token
        )


class GitHubPublisher:
    """Commit statuses on one repository (``owner/name``)."""

    name = "github"

    def __init__(
        self,
        repository: str,
        *,
        token_env: str | None = None,
        token_file: str | None = None,
        token: str | None = None,
        base_url: str = DEFAULT_API,
        timeout: float = http.DEFAULT_TIMEOUT,
    ) -> None:
        owner, _, repo = repository.partition("/")
        if not owner or not repo or "/" in repo:
            raise ValueError(f"repository must be 'owner/name', not {repository!r}")
        self.repository = repository
        self.api = GitHubApi(http.Token(env=token_env, file=token_file, value=token), base_url, timeout)
        self._prefix = f"/repos/{_q(owner)}/{_q(repo)}"

    def __repr__(self) -> str:
        return f"GitHubPublisher({self.repository!r}, base_url={self.api.base_url!r})"

    def publish(self, status: CommitStatus) -> None:
        body: dict[str, Any] = {
            "state": status.state,
            "description": status.description,
            "context": status.context,
        }
        if status.target_url:
            body["target_url"] = status.target_url
        self.api.call("POST", f"{self._prefix}/statuses/{_q(status.sha)}", body)

    def check(self) -> str:
        """Read the repository (the token works and may see it); its full name, or raise."""
        resp = self.api.call("GET", self._prefix)
        body = resp.body if isinstance(resp.body, dict) else {}
        return str(body.get("full_name") or self.repository)

    def read(self, sha: str) -> dict[str, dict]:
        """The current status per context, from the combined status, over all its pages."""
        out: dict[str, dict] = {}
        page = 1
        while True:
            path = f"{self._prefix}/commits/{_q(sha)}/status?per_page={PER_PAGE}&page={page}"
            resp = self.api.call("GET", path)
            body = resp.body if isinstance(resp.body, dict) else {}
            items = body.get("statuses") or []
            for item in items:
                context = item.get("context") or "default"
                out.setdefault(
                    context,
                    {
                        "state": item.get("state"),
                        "description": item.get("description") or "",
                        "updatedAt": item.get("updated_at") or item.get("created_at"),
                        "targetUrl": item.get("target_url"),
                    },
                )
            total = body.get("total_count")
            if not items or len(items) < PER_PAGE or (isinstance(total, int) and len(out) >= total):
                return out
            page += 1


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")
