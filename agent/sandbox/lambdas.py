"""Lambda Invoke, answered by the sandbox: moto runs functions in Docker, which the sandbox does not have.

Lifecycle hooks may name a Lambda function. The sandbox answers ``Invoke``
(``POST /2015-03-31/functions/{name}/invocations``, the REST path every SDK uses) itself, with the
result a test or a user set for that function, and records each call:

* ``POST /_sandbox/lambda/{name}`` with ``{"status": "SUCCEEDED"|"FAILED"|"IN_PROGRESS", "reason": "..."}``
  (the function returns that JSON), ``{"payload": <any JSON>}`` (returned as is), or
  ``{"functionError": "Unhandled", "errorMessage": "...", "errorType": "..."}`` (the function raised:
  ``X-Amz-Function-Error`` is set and the payload is Lambda's error object);
* ``GET /_sandbox/lambda/{name}``: the result set and the calls received (payload, invocation type, time);
* ``DELETE /_sandbox/lambda/{name}``: forget both.

``{name}`` is a function name or ARN (a qualifier is ignored). A function with no result set answers
``{"status": "SUCCEEDED"}`` when moto knows it (created with CreateFunction), and
``ResourceNotFoundException`` (404) otherwise, as Lambda does.
"""

from __future__ import annotations

import copy
import io
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from moto.core import DEFAULT_ACCOUNT_ID

from .overlay import Reply, region_of

if TYPE_CHECKING:
    from .overlay import EcsOverlay

Json = dict[str, Any]
HOOK_STATES = ("SUCCEEDED", "FAILED", "IN_PROGRESS")
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
CONTROL_PATH = re.compile(r"^/_sandbox/lambda/(?P<name>[^/]+)$")
DEFAULT_RESULT: Json = {"payload": {"status": "SUCCEEDED"}}


def function_name(ref: str) -> str:
    """The bare function name of a name, a partial ARN or an ARN (qualifier dropped).

    >>> function_name("arn:aws:lambda:eu-west-1:123456789012:function:smoke:live")
    'smoke'
    >>> function_name("smoke")
    'smoke'
    """
    parts = ref.split(":")
    if "function" in parts:
        return parts[parts.index("function") + 1]
    return parts[0] if len(parts) <= 2 else parts[-1]


def result_from(body: Json) -> Json:
    """Validate a control request's body into a stored result (see the module docstring)."""
    if not isinstance(body, dict) or not body:
        raise ValueError(
            'expected {"status": ..., "reason": ...}, {"payload": ...} or {"functionError": ...}'
        )
    if "functionError" in body:
        unknown = set(body) - {"functionError", "errorMessage", "errorType"}
        if unknown:
            raise ValueError(f"unknown fields with functionError: {', '.join(sorted(unknown))}")
        if not isinstance(body["functionError"], str) or not body["functionError"]:
            raise ValueError("functionError must be a non-empty string (e.g. Unhandled)")
        message = str(body.get("errorMessage", "the function raised an error"))
        error = {
            "errorMessage": message,
            "errorType": str(body.get("errorType", "Exception")),
            "stackTrace": [],
        }
        return {"functionError": body["functionError"], "payload": error}
    if "payload" in body:
        if set(body) != {"payload"}:
            raise ValueError("payload cannot be combined with other fields")
        return {"payload": copy.deepcopy(body["payload"])}
    unknown = set(body) - {"status", "reason"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    if body.get("status") not in HOOK_STATES:
        raise ValueError(f"status must be one of {', '.join(HOOK_STATES)}")
    payload: Json = {"status": body["status"]}
    if body.get("reason"):
        payload["reason"] = str(body["reason"])
    return {"payload": payload}


@dataclass
class LambdaFunctions:
    """Results and recorded invocations of sandbox Lambda functions, by function name (thread-safe)."""

    now: Callable[[], float] = lambda: 0.0
    results: dict[str, Json] = field(default_factory=dict)
    calls: dict[str, list[Json]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    exists: Callable[[dict[str, Any], str], bool] = lambda _environ, _name: False

    def set(self, name: str, body: Json) -> Json:
        """Store the result for ``name`` (a name or an ARN); returns what ``describe`` shows."""
        result = result_from(body)
        with self.lock:
            self.results[function_name(name)] = result
        return self.describe(name)

    def forget(self, name: str) -> Json:
        with self.lock:
            self.results.pop(function_name(name), None)
            self.calls.pop(function_name(name), None)
        return self.describe(name)

    def clear(self) -> None:
        with self.lock:
            self.results.clear()
            self.calls.clear()

    def describe(self, name: str) -> Json:
        key = function_name(name)
        with self.lock:
            return {
                "function": key,
                "result": copy.deepcopy(self.results.get(key)),
                "calls": copy.deepcopy(self.calls.get(key, [])),
            }

    def invoke(self, environ: dict[str, Any], match: re.Match[str], raw: bytes) -> Reply:
        """Lambda Invoke: record the call, answer with the stored result."""
        ref = match.group("name")
        key = function_name(ref)
        with self.lock:
            result = copy.deepcopy(self.results.get(key))
        if result is None and not self.exists(environ, ref):
            return _not_found(environ, ref)
        result = result or copy.deepcopy(DEFAULT_RESULT)
        invocation = str(environ.get("HTTP_X_AMZ_INVOCATION_TYPE") or "RequestResponse")
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", errors="replace")
        with self.lock:
            self.calls.setdefault(key, []).append(
                {"payload": payload, "invocationType": invocation, "at": self.now()}
            )
        if invocation == "Event":
            return Reply(202, b"", [("Content-Type", "application/json")])
        if invocation == "DryRun":
            return Reply(204, b"", [("Content-Type", "application/json")])
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST")]
        if result.get("functionError"):
            headers.append(("X-Amz-Function-Error", result["functionError"]))
        return Reply(200, json.dumps(result["payload"]).encode(), headers)

    def install(self, overlay: EcsOverlay) -> None:
        """Serve Invoke and the ``/_sandbox/lambda/{name}`` control routes through ``overlay``."""
        self.now = overlay.now
        self.exists = lambda environ, ref: _moto_knows(overlay, environ, ref)
        overlay.aws_routes.append(("POST", INVOKE_PATH, "Invoke", self.invoke))
        overlay.control_routes.extend(
            [
                ("GET", CONTROL_PATH, lambda m, _b: self.describe(m.group("name"))),
                ("POST", CONTROL_PATH, lambda m, body: self.set(m.group("name"), body)),
                ("DELETE", CONTROL_PATH, lambda m, _b: self.forget(m.group("name"))),
            ]
        )


def _moto_knows(overlay: EcsOverlay, environ: dict[str, Any], ref: str) -> bool:
    """Whether moto has a function ``ref`` (GetFunction through its WSGI app, same credentials)."""
    inner = {k: v for k, v in environ.items() if k != "wsgi.input"}
    inner.update(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": f"/2015-03-31/functions/{ref}",
            "RAW_URI": f"/2015-03-31/functions/{quote(ref, safe='')}",
            "REQUEST_URI": f"/2015-03-31/functions/{quote(ref, safe='')}",
            "QUERY_STRING": "",
            "CONTENT_LENGTH": "0",
            "wsgi.input": io.BytesIO(b""),
        }
    )
    captured: Json = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"] = int(status.split(" ", 1)[0])

    chunks: Iterable[bytes] = overlay.app(inner, start_response)
    try:
        b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return bool(captured.get("status") == 200)


def _not_found(environ: dict[str, Any], ref: str) -> Reply:
    region = region_of(environ)
    arn = ref if ref.startswith("arn:") else f"arn:aws:lambda:{region}:{DEFAULT_ACCOUNT_ID}:function:{ref}"
    body = {"Type": "User", "Message": f"Function not found: {arn}"}
    return Reply(
        404,
        json.dumps(body).encode(),
        [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ResourceNotFoundException")],
    )
