"""``FakeGitLab``: GitLab's REST API v4, as much as the agent calls, on 127.0.0.1, checking each request.

No OpenAPI description of GitLab's v4 API is published on the package registries (npm, PyPI), so this
server holds the contract itself, from GitLab's API documentation and its ``CreateCommitStatusService``:

* ``POST /projects/:id/statuses/:sha``: ``state`` is required, one of pending, running, success, failed,
  canceled, skipped; the other fields are ``ref``, ``name`` (or ``context``), ``target_url`` (an http(s)
  URL of at most 255 characters), ``description``, ``coverage``, ``pipeline_id``; nothing else. The
  status is a job keyed by (sha, ref, name) that moves with GitLab's job state machine: ``pending``
  (enqueue) only from created; ``running`` (enqueue, then run) from created or pending; ``success``,
  ``failed`` (drop) and ``canceled`` from created, pending or running; ``skipped`` from created or
  pending. Anything else is GitLab's 400 "Cannot transition status via :run from :running" and the job
  keeps its description. A finished job stays; the next post for that key starts a new one. Without
  ``ref`` the real GitLab picks a branch containing the commit: here there is none, so 404 "References
  for commit Not Found" (what a fork's merge-request head gets).
* ``GET /projects/:id/repository/commits/:sha/statuses`` (paginated: ``per_page`` at most 100, ``page``,
  ``X-Next-Page``), ``GET /projects/:id``, ``GET /projects/:id/merge_requests/:iid``, and merge-request
  notes (``GET|POST /projects/:id/merge_requests/:iid/notes``, ``PUT .../notes/:note_id``).

The token is accepted in ``PRIVATE-TOKEN``, ``Authorization: Bearer`` or ``JOB-TOKEN``; anything else is
401. Every request that breaks the contract (an undocumented route or field, a bad value) is answered
400 or 404 and listed in ``violations``, so a test asserts that list is empty. ``kill()`` closes the
port (connections are refused) and ``revive()`` opens it again.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from agent.sandbox.git_hosts import LoopbackHost

STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
FIELDS = {"state", "ref", "name", "context", "target_url", "description", "coverage", "pipeline_id"}
ACTIVE = ("created", "pending", "running")  # GitLab's running_or_pending scope (and a job just built)
# state posted -> (GitLab's event, the states that event moves from)
EVENTS = {
    "pending": ("enqueue", ("created",)),
    "running": ("run", ("created", "pending")),
    "success": ("success", ("created", "pending", "running")),
    "failed": ("drop", ("created", "pending", "running")),
    "canceled": ("cancel", ("created", "pending", "running")),
    "skipped": ("skip", ("created", "pending")),
}


class FakeGitLab(LoopbackHost):
    """One GitLab project (``project_id``, ``path``) on 127.0.0.1; ``url`` is the base (``/api/v4`` is
    added by the publisher). ``jobs`` lists every status job, ``history`` every accepted post,
    ``merge_requests`` maps an iid to its source branch, ``violations`` the requests that broke the
    contract."""

    thread_name = "fake-gitlab"

    def __init__(
        self, token: str = "glpat-fake-token", project_id: int = 42, path: str = "group/project"
    ) -> None:
        self.token = token
        self.project_id = project_id
        self.path = path
        self.jobs: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.notes: dict[int, list[dict[str, Any]]] = {}
        self.merge_requests: dict[int, str] = {}
        self.violations: list[str] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, auth headers seen)
        self.fail: tuple[int, str] | None = None  # (status, message) to answer every request with
        self._lock = threading.Lock()
        self._port = 0
        self._server: ThreadingHTTPServer | None = None

    def states(self, sha: str, name: str) -> list[tuple[str, str]]:
        """(state, description) of each job of ``name`` on ``sha``, oldest first, as they are now."""
        with self._lock:
            return [
                (j["status"], j["description"]) for j in self.jobs if j["sha"] == sha and j["name"] == name
            ]

    # -- the API ---------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        found = re.fullmatch(r"/api/v4/projects/([^/]+)(/.*)?", parts.path)
        if found is None:
            return self._violation(404, f"{method} {parts.path}: not a v4 project route")
        if unquote(found.group(1)) not in (str(self.project_id), self.path):
            return 404, {"message": "404 Project Not Found"}, {}
        route = found.group(2) or ""
        with self._lock:
            if method == "GET" and route == "":
                return 200, {"id": self.project_id, "path_with_namespace": self.path}, {}
            if method == "POST" and (m := re.fullmatch(r"/statuses/([^/]+)", route)):
                return self._post_status(m.group(1), body)
            if method == "GET" and (m := re.fullmatch(r"/repository/commits/([^/]+)/statuses", route)):
                return self._list_statuses(m.group(1), query)
            if method == "GET" and (m := re.fullmatch(r"/merge_requests/(\d+)", route)):
                iid = int(m.group(1))
                if iid not in self.merge_requests:
                    return 404, {"message": "404 Not found"}, {}
                return 200, {"iid": iid, "source_branch": self.merge_requests[iid]}, {}
            if m := re.fullmatch(r"/merge_requests/(\d+)/notes(?:/(\d+))?", route):
                return self._notes(method, int(m.group(1)), m.group(2), body, query)
        return self._violation(404, f"{method} {route}: not a route the agent may call")

    def _post_status(self, sha: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            return 404, {"message": "404 Commit Not Found"}, {}
        if not isinstance(body, dict):
            return self._violation(400, "the body is not a JSON object")
        extra = set(body) - FIELDS
        if extra:
            return self._violation(400, f"undocumented fields {sorted(extra)}")
        state = body.get("state")
        if not state:
            return self._violation(400, "state is missing")
        if state not in STATES:
            return self._violation(400, f"state does not have a valid value: {state!r}")
        for key in ("ref", "name", "context", "description", "target_url"):
            if key in body and not isinstance(body[key], str):
                return self._violation(400, f"{key} is invalid")
        url = body.get("target_url")
        if url is not None and (not re.fullmatch(r"https?://\S+", url) or len(url) > 255):
            return self._violation(400, f"target_url is not a URL of at most 255 characters: {url!r}")
        ref = body.get("ref")
        if not ref:
            return 404, {"message": "404 References for commit Not Found"}, {}
        name = body.get("name") or body.get("context") or "default"
        if len(name) > 255:
            return self._violation(400, "name is longer than 255 characters")
        job = next(
            (
                j
                for j in self.jobs
                if (j["sha"], j["ref"], j["name"]) == (sha, ref, name) and j["status"] in ACTIVE
            ),
            None,
        )
        if job is None:
            job = {"id": 1000 + len(self.jobs), "sha": sha, "ref": ref, "name": name, "status": "created"}
            job.update(description=None, target_url=None, created_at="2026-06-02T10:00:00.000Z")
            new = True
        else:
            new = False
        event, allowed = EVENTS[state]
        if job["status"] not in allowed:
            message = f"Cannot transition status via :{event} from :{job['status']}"
            return 400, {"message": f'{message} (Reason(s): Status cannot transition via "{event}")'}, {}
        job["status"] = state
        if "description" in body:
            job["description"] = body["description"]
        if "target_url" in body:
            job["target_url"] = body["target_url"]
        if new:
            self.jobs.append(job)
        self.history.append(
            {"sha": sha, "ref": ref, "name": name, "state": state, "description": job["description"]}
        )
        return 201, _public(job), {}

    def _list_statuses(self, sha: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        size, page = query.get("per_page", "20"), query.get("page", "1")
        if not (size.isdigit() and page.isdigit()) or not 1 <= int(size) <= 100 or int(page) < 1:
            return self._violation(400, f"per_page must be 1..100 and page >= 1, not {size!r}, {page!r}")
        latest: dict[str, dict[str, Any]] = {}
        for job in self.jobs:  # without all=true GitLab lists the latest job of each name
            if job["sha"] == sha:
                latest[job["name"]] = job
        items = sorted(latest.values(), key=lambda j: j["id"])
        n, p = int(size), int(page)
        chunk = [_public(j) for j in items[(p - 1) * n : p * n]]
        headers = {"X-Total": str(len(items)), "X-Next-Page": str(p + 1) if p * n < len(items) else ""}
        return 200, chunk, headers

    def _notes(
        self, method: str, iid: int, note_id: str | None, body: Any, query: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        notes = self.notes.setdefault(iid, [])
        if method == "GET" and note_id is None:
            size, page = int(query.get("per_page", "20")), int(query.get("page", "1"))
            return 200, notes[(page - 1) * size : page * size], {}
        if not isinstance(body, dict) or not isinstance(body.get("body"), str) or set(body) - {"body"}:
            return self._violation(400, "a note needs exactly a string body")
        if method == "POST" and note_id is None:
            notes.append({"id": 5000 + sum(len(n) for n in self.notes.values()), "body": body["body"]})
            return 201, notes[-1], {}
        if method == "PUT" and note_id is not None:
            for note in notes:
                if note["id"] == int(note_id):
                    note["body"] = body["body"]
                    return 200, note, {}
            return 404, {"message": "404 Not found"}, {}
        return self._violation(405, f"{method} on notes")

    def _violation(self, status: int, message: str) -> tuple[int, Any, dict[str, str]]:
        self.violations.append(message)
        return status, {"message": f"contract: {message}"}, {}

    def _handler(self) -> type:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                seen = {
                    k: v
                    for k in ("PRIVATE-TOKEN", "Authorization", "JOB-TOKEN")
                    if (v := self.headers.get(k)) is not None
                }
                with fake._lock:
                    fake.requests.append((self.command, self.path, seen))
                good = [
                    k
                    for k, v in seen.items()
                    if v == (f"Bearer {fake.token}" if k == "Authorization" else fake.token)
                ]
                if fake.fail is not None:
                    status, answer, headers = fake.fail[0], {"message": fake.fail[1]}, {}
                elif good and len(seen) == 1:
                    try:
                        body = json.loads(raw) if raw else None
                    except ValueError:
                        status, answer, headers = fake._violation(400, "the body is not JSON")
                    else:
                        status, answer, headers = fake.answer(self.command, self.path, body)
                elif len(seen) > 1:
                    status, answer, headers = fake._violation(400, f"several credentials: {sorted(seen)}")
                else:
                    status, answer, headers = 401, {"message": "401 Unauthorized"}, {}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _public(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it."""
    return {
        "id": job["id"],
        "sha": job["sha"],
        "ref": job["ref"],
        "name": job["name"],
        "status": job["status"],
        "description": job["description"],
        "target_url": job["target_url"],
        "created_at": job["created_at"],
        "started_at": None,
        "finished_at": None,
        "allow_failure": False,
    }
