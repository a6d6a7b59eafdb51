"""Commit statuses on GitLab through the REST API v4, the way GitLab's own jobs move.

``POST {base}/api/v4/projects/:id/statuses/:sha`` with ``state``, ``name`` (our context), ``ref``,
``description`` and ``target_url``. ``:id`` is the numeric project id or the URL-encoded path
(``group%2Fproject``). The token goes in ``PRIVATE-TOKEN`` (a personal, project or group access token:
``auth="private"``), ``Authorization: Bearer`` (an OAuth token: ``auth="bearer"``) or ``JOB-TOKEN``
(a CI job token: ``auth="job"``).

GitLab keeps a status as an external job of a pipeline for (sha, ref, name) and moves it with its job
state machine: a new job may go to pending, running, success or failed; pending may go to running,
success or failed; a running job only to success or failed; a finished job is kept and the next post
starts a new job. Posting a state the job cannot move to is refused with 400 "Cannot transition status
via :run from :running", and the job keeps its old description. So our in-progress statuses map like
this: the first one of a rollout is ``pending``, the next one with a new text is ``running`` (the text
GitLab shows from then on until the end: a running job takes no new text; the dashboard behind
``target_url`` has the live countdown); ``success`` is ``success``; ``failure`` and ``error`` are
``failed`` (the description tells them apart). What the job already is, is remembered per (sha, name,
ref); after a restart the 400 GitLab answers for an in-progress post tells it, and counts as written.

``ref`` is the branch the commit was deployed from (the tracked branch by default) or, for a plan of a
merge request head (``refs/merge-requests/7/head``), that merge request's source branch: without it
GitLab guesses one, and answers 404 "References for commit" for a fork's head.

Reading back maps every GitLab state onto ours: created, waiting_for_resource, preparing, pending,
running, manual and scheduled are ``pending``; success is ``success``; failed is ``failure``; canceled
and skipped are ``error``.
"""

from __future__ import annotations

import re
import threading
import urllib.parse
from typing import Any

from agent.status import http
from agent.status.model import CommitStatus

DEFAULT_BASE = "https://gitlab.com"
AUTH_TYPES = ("private", "bearer", "job")
TO_GITLAB = {"pending": "pending", "success": "success", "failure": "failed", "error": "failed"}
FROM_GITLAB = {
    "created": "pending",
    "waiting_for_resource": "pending",
    "preparing": "pending",
    "pending": "pending",
    "running": "pending",
    "manual": "pending",
    "scheduled": "pending",
    "success": "success",
    "failed": "failure",
    "canceled": "error",
    "skipped": "error",
}
_TRANSITION = re.compile(r"cannot transition status via :(\w+) from :(\w+)", re.IGNORECASE)
_MERGE_REQUEST = re.compile(r"refs/merge-requests/(\d+)/(?:head|merge)")
_SHA = re.compile(r"[0-9a-f]{40}")
PER_PAGE = 100


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
        auth: str = "private",
        ref: str | None = None,
    ) -> None:
        if auth not in AUTH_TYPES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_TYPES)}, not {auth!r}")
        self.project = str(project)
        base = base_url.rstrip("/")
        self.base_url = base.removesuffix("/api/v4")
        self.timeout = timeout
        self.auth = auth
        self.ref = ref  # the tracked branch: the ref of statuses that name none
        self._token = http.Token(env=token_env, file=token_file, value=token)
        project_id = self.project if "%" in self.project else urllib.parse.quote(self.project, safe="")
        self._prefix = f"{self.base_url}/api/v4/projects/{project_id}"
        self._jobs: dict[tuple[str, str, str | None], str] = {}  # (sha, name, ref) -> GitLab job state
        self._source_branches: dict[str, str] = {}  # merge request iid -> its source branch
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GitLabPublisher({self.project!r}, base_url={self.base_url!r})"

    def _call(self, method: str, path: str, body: Any = None) -> http.Response:
        token = self._token.get()
        headers = {"Accept": "application/json", "User-Agent": "ecs-gitops"}
        if self.auth == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        elif self.auth == "job":
            headers["JOB-TOKEN"] = token
        else:
            headers["PRIVATE-TOKEN"] = token
        return http.request(
            method, self._prefix + path, headers=headers, body=body, timeout=self.timeout, secret=token
        )

    def call(self, method: str, path: str, body: Any = None) -> http.Response:
        """An authenticated request under the project (``/merge_requests/7/notes``): plan comments use it."""
        return self._call(method, path, body)

    def check(self) -> str:
        """Read the project (the token works and may see it); its path, or raise Transient/PermanentError."""
        resp = self._call("GET", "")
        body = resp.body if isinstance(resp.body, dict) else {}
        return str(body.get("path_with_namespace") or self.project)

    def publish(self, status: CommitStatus) -> None:
        ref = self._ref(status.ref)
        key = (status.sha, status.context, ref)
        with self._lock:
            job = self._jobs.get(key)
        state = TO_GITLAB[status.state]
        if state == "pending" and job in ("pending", "running"):
            if job == "running":
                return  # a running job takes no new text: GitLab would answer 400
            state = "running"
        body: dict[str, Any] = {"state": state, "name": status.context, "description": status.description}
        if ref:
            body["ref"] = ref
        if status.target_url:
            body["target_url"] = status.target_url
        try:
            self._call("POST", f"/statuses/{_q(status.sha)}", body)
        except http.HttpPermanentError as e:
            found = _TRANSITION.search(e.detail) if e.status == 400 else None
            if found is None or state not in ("pending", "running"):
                raise
            state = "running" if found.group(2) == "running" else found.group(2)
        with self._lock:
            self._jobs[key] = state

    def read(self, sha: str) -> dict[str, dict]:
        """The latest status per name, over every page GitLab has."""
        newest: dict[str, tuple[int, dict]] = {}
        page = 1
        while True:
            path = f"/repository/commits/{_q(sha)}/statuses?per_page={PER_PAGE}&page={page}"
            resp = self._call("GET", path)
            items = resp.body if isinstance(resp.body, list) else []
            for item in items:
                context = item.get("name") or "default"
                job_id = int(item.get("id") or 0)
                # The newest job per name wins (the highest id): a finished job is followed by a new one.
                if context in newest and newest[context][0] > job_id:
                    continue
                newest[context] = (
                    job_id,
                    {
                        "state": FROM_GITLAB.get(item.get("status", ""), "error"),
                        "description": item.get("description") or "",
                        "updatedAt": item.get("finished_at")
                        or item.get("started_at")
                        or item.get("created_at"),
                        "targetUrl": item.get("target_url"),
                    },
                )
            next_page = resp.headers.get("X-Next-Page", "") if resp.headers is not None else ""
            if not items or not next_page.isdigit():
                break
            page = int(next_page)
        return {context: entry for context, (_, entry) in newest.items()}

    def _ref(self, ref: str | None) -> str | None:
        """The branch GitLab files the status under: a merge request's source branch for its head,
        ``refs/heads/x`` as ``x``, a bare sha as none (the tracked branch's commit then)."""
        if not ref:
            return self.ref
        found = _MERGE_REQUEST.fullmatch(ref)
        if found is not None:
            return self._source_branch(found.group(1))
        if _SHA.fullmatch(ref):
            return self.ref
        return ref.removeprefix("refs/heads/").removeprefix("refs/tags/")

    def _source_branch(self, iid: str) -> str:
        with self._lock:
            known = self._source_branches.get(iid)
        if known is None:
            resp = self._call("GET", f"/merge_requests/{iid}")
            body = resp.body if isinstance(resp.body, dict) else {}
            known = str(body.get("source_branch") or "")
            if not known:
                raise http.HttpPermanentError(
                    f"merge request !{iid} names no source branch", 404, "no source_branch"
                )
            with self._lock:
                self._source_branches[iid] = known
        return known


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")
