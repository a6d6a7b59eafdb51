"""A loopback HTTP proxy in front of the sandbox that lets a request reach AWS and then loses its answer.

The agent is pointed at the proxy (``--endpoint-url``); the proxy forwards every request to the sandbox
unchanged. For an operation armed with a rule it still forwards the request (ECS acts on it), reads the
whole answer, and then:

* ``lose``: closes the connection without a byte of the answer (botocore sees "connection closed before a
  valid response": the caller cannot tell whether the call happened);
* ``hold``: keeps the answer back until released (``held`` counts the answers kept), so a test can
  SIGKILL the agent at the moment after its call reached ECS; released answers are dropped too.

``after`` lets that many matching requests through first; ``count`` is how many answers the rule takes.
``reached`` counts, per operation, the requests forwarded to the sandbox; ``calls`` counts the calls among
them: botocore sends every attempt of one call with the same ``amz-sdk-invocation-id``, so a call it
retried after a lost answer counts once there and twice in ``reached``. The operation is read from
``X-Amz-Target`` (JSON protocols), the ``Action`` form field (query protocols) or ``/operation/<name>``
(RPC v2 CBOR).
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

HOLD_LIMIT_SECONDS = 120.0


@dataclass
class Rule:
    operation: str
    action: str = "lose"  # lose | hold
    count: int = 1
    after: int = 0


def operation_of(path: str, headers: Any, body: bytes) -> str:
    target = headers.get("X-Amz-Target")
    if target:
        return str(target).rsplit(".", 1)[-1]
    if "/operation/" in path:
        return path.rsplit("/operation/", 1)[-1].split("?", 1)[0]
    if body and b"Action=" in body:
        try:
            return parse_qs(body.decode())["Action"][0]
        except (KeyError, UnicodeDecodeError):
            return ""
    return ""


class LossyProxy:
    """Forwards to ``upstream``; loses or holds the answers of the operations armed with a rule."""

    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.rules: list[Rule] = []
        self.reached: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._invocations: set[tuple[str, str]] = set()
        self.lost: Counter[str] = Counter()
        self.held = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                operation = operation_of(self.path, self.headers, body)
                rule = proxy._take(operation)
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                upstream.close()
                if operation:
                    with proxy._lock:
                        proxy.reached[operation] += 1
                        invocation = (operation, self.headers.get("amz-sdk-invocation-id") or "")
                        if not invocation[1] or invocation not in proxy._invocations:
                            proxy._invocations.add(invocation)
                            proxy.calls[operation] += 1
                if rule is not None:
                    proxy._drop(rule, operation)
                    self.close_connection = True
                    return
                self.send_response(answer.status, answer.reason)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def arm(self, operation: str, action: str = "lose", count: int = 1, after: int = 0) -> None:
        with self._lock:
            self._release.clear()
            self.rules.append(Rule(operation, action, count, after))

    def clear(self) -> None:
        """Drop every rule and let held answers go (they are lost)."""
        with self._lock:
            self.rules.clear()
            self._release.set()

    def reset(self) -> None:
        """No rule, no answer held, the counts at zero."""
        self.clear()
        with self._lock:
            self.reached.clear()
            self.calls.clear()
            self._invocations.clear()
            self.lost.clear()

    def _take(self, operation: str) -> Rule | None:
        with self._lock:
            rule = next((r for r in self.rules if r.operation == operation), None)
            if rule is None:
                return None
            if rule.after > 0:
                rule.after -= 1
                return None
            rule.count -= 1
            if rule.count <= 0:
                self.rules.remove(rule)
            return rule

    def _drop(self, rule: Rule, operation: str) -> None:
        with self._lock:
            self.lost[operation] += 1
            release = self._release
            if rule.action == "hold":
                self.held += 1
        if rule.action == "hold":
            release.wait(HOLD_LIMIT_SECONDS)
            with self._lock:
                self.held -= 1

    def close(self) -> None:
        self.clear()
        self.server.shutdown()
        self.server.server_close()
