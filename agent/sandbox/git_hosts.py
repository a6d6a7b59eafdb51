"""Git hosts on 127.0.0.1 for the status publishers: ``FakeGitHost`` (GitHub's commit statuses, failing
on demand) and ``FakeGitHub`` (commit statuses and pull-request comments, kept as GitHub would)."""

from __future__ import annotations

import json
from typing import Any, Self


class FakeGitHost:
    """GitHub's commit-status API on 127.0.0.1 (``POST /repos/{o}/{r}/statuses/{sha}``, ``GET
    /repos/{o}/{r}/commits/{sha}/statuses``) that can be told to fail: ``mode`` ``ok``, ``5xx`` (503 to
    every request) or ``hang`` (reads the request, then answers nothing until the mode changes, and then
    a 503 without applying it: the client's timeout fires first). ``statuses[sha][context]`` is the
    latest accepted status; ``requests`` counts every request. Use as a context manager; point
    ``GitHubPublisher(base_url=host.url)`` at it.
    """

    def __init__(self) -> None:
        import threading

        self.mode = "ok"
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}
        self.history: list[dict[str, Any]] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: Any = None
        self.url = ""

    def set_mode(self, mode: str) -> None:
        if mode not in ("ok", "5xx", "hang"):
            raise ValueError(f"mode must be ok, 5xx or hang, not {mode!r}")
        with self._changed:
            self.mode = mode
            self._changed.notify_all()

    def __enter__(self) -> FakeGitHost:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                host._serve(self, "POST", body)

            def do_GET(self) -> None:
                host._serve(self, "GET", None)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="fake-git-host", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.set_mode("ok")  # let hanging requests go
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, handler: Any, method: str, body: Any) -> None:
        import re

        with self._changed:
            self.requests += 1
            mode = self.mode
            while self.mode == "hang":
                self._changed.wait(timeout=60)
        if mode in ("5xx", "hang"):  # a hung request is never applied, even once the host is back
            return self._reply(handler, 503, {"message": "Service Unavailable (FakeGitHost)"})
        post = re.fullmatch(r"/repos/[^/]+/[^/]+/statuses/([0-9a-f]{40})", handler.path)
        get = re.fullmatch(r"/repos/[^/]+/[^/]+/commits/([0-9a-f]{40})/statuses(\?.*)?", handler.path)
        if method == "POST" and post and isinstance(body, dict) and body.get("state") and body.get("context"):
            entry = {k: body.get(k) for k in ("state", "description", "context", "target_url")}
            with self._lock:
                self.statuses.setdefault(post.group(1), {})[body["context"]] = entry
                self.history.append({"sha": post.group(1), **entry})
            return self._reply(handler, 201, {"id": len(self.history), **entry})
        if method == "GET" and get:
            with self._lock:
                found = list(reversed(self.statuses.get(get.group(1), {}).values()))
            return self._reply(handler, 200, found)
        return self._reply(handler, 404, {"message": "Not Found"})

    @staticmethod
    def _reply(handler: Any, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass  # the client gave up (its timeout fired while the request hung)


class LoopbackHost:
    """A fake Git host's HTTP side on 127.0.0.1: a context manager that serves until ``kill`` closes the
    port, and ``revive`` serves again on the same port. Subclasses give ``_handler()``."""

    _port = 0
    _server: Any = None
    thread_name = "fake-git-host"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> Self:
        return self.revive()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def _handler(self) -> Any:
        raise NotImplementedError

    def revive(self) -> Self:
        """Serve (again, on the same port once it had one)."""
        import threading
        from http.server import ThreadingHTTPServer

        if self._server is None:
            self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self._server.daemon_threads = True
        self._port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name=self.thread_name, daemon=True).start()
        return self

    def kill(self) -> None:
        """Stop serving and close the port: requests are refused until ``revive``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class FakeGitHub(LoopbackHost):
    """GitHub's commit-status and issue-comment endpoints on 127.0.0.1, keeping what they are sent.

    Enough of the REST API for the agent's publishers: ``GET /repos/{o}/{r}``, ``POST
    /repos/{o}/{r}/statuses/{sha}`` (at most ``MAX_STATUSES`` per sha and context, then 422 as GitHub
    does), ``GET /repos/{o}/{r}/commits/{sha}/statuses``, the combined status ``GET
    /repos/{o}/{r}/commits/{sha}/status`` and ``GET|POST /repos/{o}/{r}/issues/{n}/comments`` (paginated
    by ``per_page``/``page``) and ``PATCH /repos/{o}/{r}/issues/comments/{id}``. Requests without
    ``Authorization: Bearer <token>`` get 401, unknown paths 404. ``statuses[sha][context]`` is the latest
    status, ``history`` every status accepted (with its sha), ``comments[number]`` the comments of an
    issue, ``requests`` every (method, path). ``kill()`` closes the port (connections are refused) and
    ``revive()`` listens on it again. Use as a context manager; ``url`` is the API base to configure.
    """

    thread_name = "fake-github"

    MAX_STATUSES = 1000

    def __init__(self, token: str = "ghp_fake-token", repository: str = "acme/deployments") -> None:
        import threading
        from http.server import ThreadingHTTPServer

        self.token = token
        self.repository = repository
        self.statuses: dict[str, dict[str, dict[str, Any]]] = {}
        self.history: list[dict[str, Any]] = []
        self.counts: dict[tuple[str, str], int] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._next_id = 1000
        self._server: ThreadingHTTPServer | None = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._port = int(self._server.server_address[1])

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """(HTTP status, JSON body) for one request; the state changes as GitHub's would."""
        import re
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        prefix = f"/repos/{self.repository}"
        on_repo = parts.path == prefix or parts.path.startswith(prefix + "/")
        route = parts.path.removeprefix(prefix) if on_repo else None
        with self._lock:
            self.requests.append((method, parts.path))
            if route is None:
                return 404, {"message": "Not Found"}
            if method == "POST" and (m := re.fullmatch(r"/statuses/([0-9a-f]{40})", route)):
                entry = {k: body.get(k) for k in ("state", "description", "context", "target_url")}
                key = (m.group(1), body.get("context") or "default")
                if self.counts.get(key, 0) >= self.MAX_STATUSES:
                    message = "This SHA and context has reached the maximum number of statuses."
                    return 422, {"message": "Validation Failed", "errors": [{"message": message}]}
                self.counts[key] = self.counts.get(key, 0) + 1
                self.statuses.setdefault(key[0], {})[key[1]] = entry
                self.history.append({"sha": key[0], **entry})
                return 201, {"id": len(self.history), **entry}
            if method == "GET" and route == "":
                return 200, {"full_name": self.repository, "private": True}
            if method == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})/statuses", route)):
                return 200, list(self.statuses.get(m.group(1), {}).values())[::-1]
            if method == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})/status", route)):
                latest = list(self.statuses.get(m.group(1), {}).values())
                size, page = int(query.get("per_page", 30)), int(query.get("page", 1))
                states = {e["state"] for e in latest}
                combined = next((s for s in ("failure", "error", "pending") if s in states), "success")
                chunk = latest[(page - 1) * size : page * size]
                return 200, {
                    "state": combined,
                    "statuses": chunk,
                    "total_count": len(latest),
                    "sha": m.group(1),
                }
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
