"""A loopback receiver for lifecycle hooks: what a team's smoke-test endpoint does, for tests and the demo.

The agent engine POSTs ``{service, cluster, sha, stage, weights, taskDefinition}`` to a hook's URL,
signed with ``X-Ecs-Gitops-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`` when a secret is set,
and reads back ``{"status": "SUCCEEDED"|"FAILED"|"IN_PROGRESS", "reason": "..."}``.
:class:`HookReceiver` answers ``POST /hooks/<name>`` on 127.0.0.1 with the answer set for the body's
``stage`` (default SUCCEEDED), refuses a missing or wrong signature with 401 when it has a secret, and
records every request (accepted or not) for assertions.

>>> with HookReceiver(secret="s3cret") as receiver:              # doctest: +SKIP
...     receiver.answer("postTestTraffic", "FAILED", reason="smoke test: 3 of 20 requests failed")
...     url = receiver.url("smoke")                               # http://127.0.0.1:PORT/hooks/smoke
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_HEADER = "X-Ecs-Gitops-Signature-256"
STATES = ("SUCCEEDED", "FAILED", "IN_PROGRESS")
PATH = re.compile(r"^/hooks/(?P<name>[A-Za-z0-9._~-]+)/?$")
MAX_BODY = 1 << 20


def signature(secret: str, body: bytes) -> str:
    """The header value the agent sends: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Answer:
    """What the receiver replies for one stage: a hook answer, or a bare HTTP status (a broken endpoint)."""

    status: str = "SUCCEEDED"
    reason: str = ""
    http_status: int = 200

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class HookCall:
    """One request the receiver got."""

    name: str  # the <name> in /hooks/<name>
    stage: str | None  # the body's stage (None when the body was not a JSON object with one)
    body: Any  # the parsed JSON body (None when it did not parse)
    raw: bytes
    headers: dict[str, str]
    http_status: int  # what the receiver answered: 200, 400 bad body, 401 bad signature, 404
    answer: dict[str, Any] | None = field(default=None)  # the JSON answer sent on 200


class HookReceiver:
    """A threaded HTTP server on 127.0.0.1 answering ``POST /hooks/<name>`` (see the module docstring)."""

    def __init__(self, port: int = 0, secret: str | None = None) -> None:
        self.secret = secret
        self._lock = threading.Lock()
        self._answers: dict[str, Answer] = {}
        self._calls: list[HookCall] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, name: str = "smoke") -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{name}"

    def start(self) -> HookReceiver:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name=f"hook-receiver-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.shutdown()
            thread.join(timeout=10)
        self._server.server_close()

    def __enter__(self) -> HookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what tests set and read ------------------------------------------------------------------

    def answer(
        self, stage: str, status: str = "SUCCEEDED", reason: str = "", *, http_status: int = 200
    ) -> None:
        """Answer ``stage`` with ``status`` (and ``reason``) from now on; ``http_status`` other than 200
        sends that status with an empty JSON object instead (an endpoint that is down or broken)."""
        if status not in STATES:
            raise ValueError(f"status must be one of {', '.join(STATES)}, not {status!r}")
        if not 100 <= http_status <= 599:
            raise ValueError(f"http_status must be an HTTP status code, not {http_status!r}")
        with self._lock:
            self._answers[stage] = Answer(status, reason, http_status)

    def reset(self) -> None:
        """Forget the answers set (back to SUCCEEDED everywhere) and the calls recorded."""
        with self._lock:
            self._answers.clear()
            self._calls.clear()

    def calls(self, stage: str | None = None, name: str | None = None) -> list[HookCall]:
        """The requests received so far, oldest first, optionally only one stage's or one name's."""
        with self._lock:
            return [
                c
                for c in self._calls
                if (stage is None or c.stage == stage) and (name is None or c.name == name)
            ]

    def stages(self) -> list[str]:
        """The stages called and answered (HTTP 200), in order: what the agent went through."""
        return [c.stage for c in self.calls() if c.http_status == 200 and c.stage is not None]

    # -- serving -------------------------------------------------------------------------------------

    def _serve(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        match = PATH.match(path.split("?", 1)[0])
        body: Any = None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        stage = body.get("stage") if isinstance(body, dict) and isinstance(body.get("stage"), str) else None
        status, reply = 200, {}
        if match is None:
            status, reply = 404, {"error": f"no hook at {path}; POST /hooks/<name>"}
        elif self.secret is not None and not _signed(self.secret, raw, headers):
            status, reply = 401, {"error": f"missing or wrong {SIGNATURE_HEADER} header"}
        elif stage is None:
            status, reply = 400, {"error": 'the body must be a JSON object with a "stage"'}
        else:
            with self._lock:
                answer = self._answers.get(stage, Answer())
            status = answer.http_status
            reply = answer.body() if status == 200 else {}
        call = HookCall(
            name=match.group("name") if match else "",
            stage=stage,
            body=copy.deepcopy(body),
            raw=raw,
            headers=dict(headers),
            http_status=status,
            answer=reply if status == 200 else None,
        )
        with self._lock:
            self._calls.append(call)
        return status, reply


def _signed(secret: str, raw: bytes, headers: dict[str, str]) -> bool:
    given = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
    return hmac.compare_digest(given.encode(), signature(secret, raw).encode())


def _handler_for(receiver: HookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ecs-gitops-hook-receiver"

        def do_POST(self) -> None:
            try:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
            except ValueError:
                length = 0
            raw = self.rfile.read(length) if length > 0 else b""
            status, reply = receiver._serve(self.path, dict(self.headers.items()), raw)
            self._send(status, reply)

        def do_GET(self) -> None:
            self._send(405, {"error": "POST /hooks/<name>"})

        def _send(self, status: int, reply: dict[str, Any]) -> None:
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read calls()
            pass

    return Handler
