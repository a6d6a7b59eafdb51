"""Lifecycle hook calls (agent/engines/hooks.py) against a loopback HTTP receiver and a fake Lambda client."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from agent.engines.hooks import (
    SIGNATURE_HEADER,
    HookCall,
    HookCaller,
    hook_key,
    signature,
    state_from_json,
    state_to_json,
)
from agent.rollout.progressive import Hook, HookState

NO_STATUS = "answer has no status SUCCEEDED, FAILED or IN_PROGRESS"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BLUE, GREEN = "arn:tg/web-blue", "arn:tg/web-green"
CALL = HookCall("web", "prod", "a" * 40, "postTestTraffic", ((BLUE, 90), (GREEN, 10)), "arn:td/web:5")
SECRET = "s3cret"


@dataclass
class Receiver:
    """A hook endpoint on 127.0.0.1: answers with ``code`` and ``body``; records each request."""

    code: int = 200
    body: bytes = b'{"status": "SUCCEEDED"}'
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    hold: bool = False
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers), body))
            if state.hold:
                state.release.wait(10)
            try:
                self.send_response(state.code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(state.body)
            except (BrokenPipeError, ConnectionResetError):  # the agent gave up waiting (timeout test)
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/smoke"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def _hook(url: str | None = None, lambda_arn: str | None = None, timeout: float = 120) -> Hook:
    return Hook("postTestTraffic", url, lambda_arn, timedelta(seconds=timeout), "rollback")


def _caller(**kwargs: Any) -> HookCaller:
    return HookCaller("HOOK_SECRET", env={"HOOK_SECRET": SECRET}, **kwargs)


def test_the_body_is_signed_with_hmac_sha256_of_the_secret(receiver: Receiver) -> None:
    """The POST carries the rollout as JSON and X-Ecs-Gitops-Signature-256 = sha256=HMAC(secret, body)."""
    state = _caller().call(_hook(receiver.url), CALL, None, NOW)
    assert state == HookState("postTestTraffic", "SUCCEEDED", NOW, NOW, "")
    headers, body = receiver.requests[0]
    assert json.loads(body) == {
        "service": "web",
        "cluster": "prod",
        "sha": "a" * 40,
        "stage": "postTestTraffic",
        "weights": {BLUE: 90, GREEN: 10},
        "taskDefinition": "arn:td/web:5",
    }
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected == signature(SECRET, body)
    assert headers["Content-Type"] == "application/json"


def test_without_a_secret_no_signature_header_is_sent(receiver: Receiver) -> None:
    """With the secret variable unset the call goes out unsigned."""
    HookCaller("HOOK_SECRET", env={}).call(_hook(receiver.url), CALL, None, NOW)
    headers, _ = receiver.requests[0]
    assert SIGNATURE_HEADER not in headers


@pytest.mark.parametrize(
    ("code", "body", "status", "reason"),
    [
        (200, b'{"status": "SUCCEEDED"}', "SUCCEEDED", ""),
        (
            200,
            b'{"status": "IN_PROGRESS", "reason": "smoke tests running"}',
            "IN_PROGRESS",
            "smoke tests running",
        ),
        (200, b'{"status": "FAILED", "reason": "checkout returns 500"}', "FAILED", "checkout returns 500"),
        (202, b'{"status": "IN_PROGRESS"}', "IN_PROGRESS", ""),
        (200, b"<html>ok</html>", "IN_PROGRESS", "HTTP 200: answer is not JSON"),
        (
            200,
            b'{"status": "DONE"}',
            "IN_PROGRESS",
            f"HTTP 200: {NO_STATUS}",
        ),
        (403, b'{"reason": "bad signature"}', "FAILED", "HTTP 403: bad signature"),
        (404, b"no such hook", "FAILED", "HTTP 404: no such hook"),
        (503, b"try later", "IN_PROGRESS", "HTTP 503: try later"),
        (500, b"", "IN_PROGRESS", "HTTP 500"),
    ],
)
def test_each_answer_becomes_a_hook_state(
    receiver: Receiver, code: int, body: bytes, status: str, reason: str
) -> None:
    """2xx JSON is taken as it is; 4xx fails with its reason; 5xx and bad answers are asked again."""
    receiver.code, receiver.body = code, body
    state = _caller().call(_hook(receiver.url), CALL, None, NOW)
    assert (state.status, state.reason) == (status, reason)


def test_first_called_at_is_kept_from_the_stored_state(receiver: Receiver) -> None:
    """A repeated call keeps when the hook was first called (its timeout counts from there)."""
    first = NOW - timedelta(seconds=30)
    previous = HookState("postTestTraffic", "IN_PROGRESS", first, first)
    state = _caller().call(_hook(receiver.url), CALL, previous, NOW)
    assert (state.first_called_at, state.last_called_at, state.status) == (first, NOW, "SUCCEEDED")


def test_a_hook_nobody_listens_on_is_in_progress() -> None:
    """A refused connection is not an answer: IN_PROGRESS, so the engine asks again until the timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        state = _caller().call(_hook(f"http://127.0.0.1:{port}/hooks/smoke"), CALL, None, NOW)
    assert state.status == "IN_PROGRESS"
    assert state.reason == f"cannot reach http://127.0.0.1:{port}/hooks/smoke: Connection refused"


def test_a_slow_hook_is_cut_off_at_what_is_left_of_its_timeout(receiver: Receiver) -> None:
    """With 0.3 s of the hook's 2 min left, the request waits 0.3 s (not 10 s), then counts as IN_PROGRESS."""
    receiver.hold = True
    first = NOW - timedelta(seconds=120) + timedelta(seconds=0.3)
    previous = HookState("postTestTraffic", "IN_PROGRESS", first, first)
    started = time.monotonic()
    state = _caller().call(_hook(receiver.url), CALL, previous, NOW)
    elapsed = time.monotonic() - started
    receiver.release.set()
    assert state.status == "IN_PROGRESS"
    assert "timed out" in state.reason
    assert elapsed < 5


class FakeLambda:
    """The Lambda client's invoke, answering what a test sets; records each call."""

    def __init__(
        self, payload: bytes = b"", function_error: str | None = None, error: Exception | None = None
    ):
        self.payload, self.function_error, self.error = payload, function_error, error
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if self.error is not None:
            raise self.error
        out: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(self.payload)}
        if self.function_error:
            out["FunctionError"] = self.function_error
        return out


@pytest.mark.parametrize(
    ("fake", "status", "reason"),
    [
        (FakeLambda(b'{"status": "SUCCEEDED"}'), "SUCCEEDED", ""),
        (FakeLambda(b'{"status": "FAILED", "reason": "no"}'), "FAILED", "no"),
        (FakeLambda(b'{"status": "IN_PROGRESS"}'), "IN_PROGRESS", ""),
        (
            FakeLambda(b'"done"'),
            "IN_PROGRESS",
            f"Lambda: {NO_STATUS}",
        ),
        (
            FakeLambda(b'{"errorMessage": "boom", "errorType": "ValueError"}', function_error="Unhandled"),
            "FAILED",
            "function error: boom",
        ),
        (
            FakeLambda(error=EndpointConnectionError(endpoint_url="http://127.0.0.1:1")),
            "IN_PROGRESS",
            'invoke failed: Could not connect to the endpoint URL: "http://127.0.0.1:1"',
        ),
    ],
)
def test_a_lambda_hook_reads_the_same_answer_from_the_function_result(
    fake: FakeLambda, status: str, reason: str
) -> None:
    """A Lambda hook is invoked RequestResponse with the same JSON; a FunctionError is FAILED."""
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:smoke"
    state = _caller(lambda_client=lambda: fake).call(_hook(lambda_arn=arn), CALL, None, NOW)
    assert (state.status, state.reason) == (status, reason)
    assert fake.calls[0]["FunctionName"] == arn
    assert fake.calls[0]["InvocationType"] == "RequestResponse"
    assert json.loads(fake.calls[0]["Payload"])["stage"] == "postTestTraffic"


def test_hook_states_round_trip_through_the_store_form() -> None:
    """What the reconciler stores under hook/<cluster>/<service>/<fingerprint>/<stage> reads back equal."""
    state = HookState("preScaleUp", "FAILED", NOW, NOW + timedelta(seconds=5), "nope")
    assert state_from_json(json.loads(json.dumps(state_to_json(state)))) == state
    assert state_from_json(None) is None
    assert hook_key("prod", "web", "f1", "preScaleUp") == "hook/prod/web/f1/preScaleUp"
