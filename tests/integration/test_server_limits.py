"""The HTTP server's thread cap over real loopback connections: held connections that send nothing cost
no thread and /healthz still answers; connections that start a request and stall take the workers and
their queue, and past that a connection is answered 503 at once."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.http.metrics import Metrics
from agent.http.server import AgentServer, Endpoints, Readiness

WORKERS = 4


def _wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def server() -> Iterator[AgentServer]:
    endpoints = Endpoints(
        Readiness(60, lambda: datetime.now(UTC)),
        Metrics(),
        trigger=lambda: None,
        secret=lambda: None,
        branch="main",
    )
    before = set(threading.enumerate())  # threads of other tests in this process do not count
    with AgentServer(endpoints, "127.0.0.1", 0, workers=WORKERS) as running:
        running.threads_before = before  # type: ignore[attr-defined]
        yield running


def _connect(server: AgentServer, n: int, send: bytes = b"") -> list[socket.socket]:
    held = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        if send:
            sock.sendall(send)
        held.append(sock)
    return held


def _http_threads(server: AgentServer) -> int:
    """The threads this server started (and still runs)."""
    before = server.threads_before  # type: ignore[attr-defined]
    return sum(1 for t in threading.enumerate() if t not in before)


def test_held_connections_cost_no_thread_and_healthz_answers(server: AgentServer) -> None:
    """300 connections that send nothing wait without a thread; /healthz answers 200 meanwhile."""
    held = _connect(server, 300)
    try:
        _wait_for(lambda: server._httpd.stats()["waiting"] == 300, "300 waiting connections")
        with urllib.request.urlopen(server.url + "/healthz", timeout=10) as response:
            assert (response.status, json.loads(response.read())) == (200, {"status": "ok"})
        assert _http_threads(server) <= WORKERS + 2  # the workers, the serving thread and the waiting room
    finally:
        for sock in held:
            sock.close()


def test_stalled_requests_fill_the_workers_and_the_queue_then_503(server: AgentServer) -> None:
    """Requests that stall after their first line occupy the 4 workers and the 64 places of the queue; the
    next connection is answered 503 at once, and the threads stay at the cap."""
    httpd = server._httpd
    full = httpd.workers + httpd.backlog
    held = _connect(server, full, b"GET /healthz HTTP/1.1\r\n")  # no blank line: the request never ends
    try:
        _wait_for(lambda: httpd.stats()["queued"] == full, f"{full} queued requests")
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.recv(4096)
        sock.close()
        assert answer.startswith(b"HTTP/1.0 503"), answer
        assert time.monotonic() - started < 5
        assert _http_threads(server) <= WORKERS + 2
    finally:
        for sock in held:
            sock.close()
