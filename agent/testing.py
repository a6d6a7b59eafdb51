"""Fakes and fixtures for tests, ours and other projects': the agent's plan/apply path on a sandbox,
a fake clock, and file helpers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.aws.clients import Aws
from agent.aws.executing import Applied, Executor
from agent.aws.pacing import Pacer
from agent.manifests.tree import DirTree
from agent.reconcile import PlanResult, Reconciler

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "manifests-example"
CORPUS = REPO_ROOT.parent / "shared" / "corpus" / "taskdefs"


class FakeClock:
    """Time that moves only when told: ``now()`` for datetimes, ``monotonic()`` and ``sleep()`` for pacing."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds

    sleep = advance


class Harness:
    """The agent's plan/apply path on one sandbox, sharing one AWS call counter."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
        self.reconciler = Reconciler(self.aws)

    def plan(self, root: Path) -> PlanResult:
        return self.reconciler.plan(DirTree(root))

    def apply(self, root: Path) -> PlanResult:
        """Plan ``root`` and execute every change (pacing lifted: the sandbox has no API limits)."""
        result = self.plan(root)
        self.execute(result)
        return result

    def execute(self, result: PlanResult) -> Applied:
        return Executor(self.aws, Pacer(limits={})).execute(result.plan)


def write(root: Path, rel: str, content: Any) -> Path:
    """Write ``content`` (text, or JSON for anything else) at ``root/rel``, creating folders."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2))
    return path


class FakeGitHub:
    """GitHub's commit-status and issue-comment endpoints on 127.0.0.1, keeping what they are sent.

    Enough of the REST API for the agent's publishers: ``POST /repos/{o}/{r}/statuses/{sha}``,
    ``GET /repos/{o}/{r}/commits/{sha}/statuses``, ``GET|POST /repos/{o}/{r}/issues/{n}/comments``
    (paginated by ``per_page``/``page``) and ``PATCH /repos/{o}/{r}/issues/comments/{id}``. Requests
    without ``Authorization: Bearer <token>`` get 401, unknown paths 404. ``statuses[sha][context]`` is
    the latest status, ``comments[number]`` the comments of an issue, ``requests`` every (method, path).
    Use as a context manager; ``url`` is the API base to configure.
    """

    def __init__(self, token: str = "ghp_fake-token", repository: str = "acme/deployments") -> None:
        import threading
        from http.server import ThreadingHTTPServer

        self.token = token
        self.repository = repository
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._next_id = 1000
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-github", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """(HTTP status, JSON body) for one request; the state changes as GitHub's would."""
        import re
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        prefix = f"/repos/{self.repository}"
        route = parts.path.removeprefix(prefix) if parts.path.startswith(prefix + "/") else None
        with self._lock:
            self.requests.append((method, parts.path))
            if route is None:
                return 404, {"message": "Not Found"}
            if method == "POST" and (m := re.fullmatch(r"/statuses/([0-9a-f]{40})", route)):
                entry = {k: body.get(k) for k in ("state", "description", "context", "target_url")}
                self.statuses.setdefault(m.group(1), {})[body.get("context") or "default"] = entry
                return 201, {"id": 1, **entry}
            if method == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})/statuses", route)):
                return 200, list(self.statuses.get(m.group(1), {}).values())[::-1]
            if m := re.fullmatch(r"/issues/(\d+)/comments", route):
                comments = self.comments.setdefault(int(m.group(1)), [])
                if method == "GET":
                    size, page = int(query.get("per_page", 30)), int(query.get("page", 1))
                    return 200, comments[(page - 1) * size : page * size]
                if method == "POST" and isinstance(body.get("body"), str):
                    self._next_id += 1
                    comments.append({"id": self._next_id, "body": body["body"]})
                    return 201, comments[-1]
                return 422, {"message": "Validation Failed"}
            if method == "PATCH" and (m := re.fullmatch(r"/issues/comments/(\d+)", route)):
                for comment in (c for cs in self.comments.values() for c in cs):
                    if comment["id"] == int(m.group(1)) and isinstance(body.get("body"), str):
                        comment["body"] = body["body"]
                        return 200, comment
                return 404, {"message": "Not Found"}
        return 404, {"message": "Not Found"}

    def _handler(self) -> type:
        from http.server import BaseHTTPRequestHandler

        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    status, answer = 401, {"message": "Bad credentials"}
                else:
                    status, answer = fake.answer(self.command, self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _serve

            def log_message(self, *args: Any) -> None:  # quiet: tests read ``requests``
                pass

        return Handler
