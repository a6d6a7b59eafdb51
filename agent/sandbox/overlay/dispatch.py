"""The overlay's WSGI middleware, :class:`EcsOverlay`: routes each request and owns the dispatch tables.

ECS JSON requests (``X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>``) become a
:class:`~agent.sandbox.overlay.calls.Call` answered by ``handlers`` (or forwarded to moto) and then
patched by ``post_processors``; a CreateService or CreateTaskSet whose ``clientToken`` already created a
resource answers that one instead (:mod:`~agent.sandbox.overlay.client_tokens`). ``/_sandbox/`` requests
go to ``control_routes``; every other AWS request passes the ``pre_request`` hooks (faults), the
``filters`` (STS) and ``aws_routes`` (Lambda Invoke), else goes to moto untouched.
:data:`DEFAULT_HANDLERS` and :data:`DEFAULT_POST_PROCESSORS` are the resource modules' entries; the
simulator adds its own with :meth:`Simulator.install`.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from agent.sandbox.overlay import capacity_providers, client_tokens, clusters, services, task_definitions
from agent.sandbox.overlay.calls import Call, EcsError, Handler, Json, OverlayState, PostProcessor, Reply
from agent.sandbox.overlay.task_definitions import ECHO_ECS

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
CONTENT_TYPE = "application/x-amz-json-1.1"
# A control endpoint: (HTTP method, path regex, handler(match, JSON body) -> JSON reply).
ControlRoute = tuple[str, "re.Pattern[str]", Callable[["re.Match[str]", Json], Json]]
# A REST API the sandbox serves instead of moto (Lambda Invoke): (HTTP method, path regex, operation,
# handler(environ, match, raw body) -> Reply).
AwsRoute = tuple[str, "re.Pattern[str]", str, Callable[[dict[str, Any], "re.Match[str]", bytes], "Reply"]]
CONTROL_PREFIX = "/_sandbox/"

DEFAULT_HANDLERS: dict[str, Handler] = {
    "CreateService": services.create_service,
    "UpdateService": services.update_service,
    "CreateCapacityProvider": capacity_providers.create_capacity_provider,
    "UpdateCapacityProvider": capacity_providers.update_capacity_provider,
    "DeleteCapacityProvider": capacity_providers.delete_capacity_provider,
    "DescribeCapacityProviders": capacity_providers.describe_capacity_providers,
    "CreateCluster": clusters.create_cluster,
    "PutClusterCapacityProviders": clusters.put_cluster_capacity_providers,
    "UpdateClusterSettings": clusters.update_cluster_settings,
    "RegisterTaskDefinition": task_definitions.register_task_definition,
}

DEFAULT_POST_PROCESSORS: dict[str, list[PostProcessor]] = {
    "DescribeServices": [services.describe_services_post],
    "DeleteService": [services.delete_service_post],
    "CreateCapacityProvider": [capacity_providers.capacity_provider_post],
    "UpdateCapacityProvider": [capacity_providers.capacity_provider_post],
    "DeleteCapacityProvider": [capacity_providers.capacity_provider_post],
    "DescribeClusters": [clusters.describe_clusters_post],
    "CreateCluster": [clusters.cluster_post],
    "UpdateCluster": [clusters.cluster_post],
    "UpdateClusterSettings": [clusters.cluster_post],
    "PutClusterCapacityProviders": [clusters.cluster_post],
    "DeleteCluster": [clusters.cluster_post],
    "DescribeTaskDefinition": [task_definitions.task_definition_post],
    "DeregisterTaskDefinition": [task_definitions.task_definition_post],
    "ListTaskDefinitions": [task_definitions.list_task_definitions_post],
}


class EcsOverlay:
    """WSGI middleware: ECS JSON requests go through ``handlers``/``post_processors``, the rest to moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]], now: Callable[[], float] = time.time) -> None:
        self.app = app
        self.lock = threading.RLock()
        self.state = OverlayState()
        self.now = now  # the sandbox clock (epoch seconds) for createdAt, registeredAt...
        # How RegisterTaskDefinition is stored: "ecs" adds the defaults ECS adds, "verbatim" keeps the
        # request as moto stores it (agent.sandbox.overlay.task_definitions).
        self.echo = ECHO_ECS
        self.handlers: dict[str, Handler] = dict(DEFAULT_HANDLERS)
        self.post_processors: dict[str, list[PostProcessor]] = {
            op: list(fns) for op, fns in DEFAULT_POST_PROCESSORS.items()
        }
        self.before_dispatch: list[Callable[[], None]] = []
        self.control_routes: list[ControlRoute] = []
        self.aws_routes: list[AwsRoute] = []
        # Called per AWS request (any service: the operation name only) before the overlay's lock is
        # taken (a fault may hold the request); an EcsError returned is the reply.
        self.pre_request: list[Callable[[str], EcsError | None]] = []
        # Asked about every other request (STS, EC2, ...) before moto: (environ, body) -> None to let it
        # through, or (HTTP status, body, content type) to answer instead (agent/sandbox/sts.py).
        self.filters: list[Callable[[dict[str, Any], bytes], tuple[int, bytes, str] | None]] = []

    def reset(self) -> None:
        """Forget everything (moto's own reset is the caller's job)."""
        with self.lock:
            self.state = OverlayState()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target and str(environ.get("PATH_INFO", "")).startswith(CONTROL_PREFIX):
            return self.control(environ, start_response)
        if not target.startswith(TARGET_PREFIX):
            return self.other(environ, start_response)
        operation = target[len(TARGET_PREFIX) :]
        raw = _read_body(environ)
        try:
            params = json.loads(raw or b"{}")
        except ValueError:
            params = None
        injected = next((e for hook in self.pre_request if (e := hook(operation)) is not None), None)
        if injected is not None:
            reply = _error_reply(injected)
        elif not isinstance(params, dict):
            reply = _error_reply(EcsError("SerializationException", "request body is not a JSON object"))
        else:
            with self.lock:
                reply = self.dispatch(environ, operation, params)
        return _respond(reply, start_response)

    def other(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """A request for another AWS service: faults first, then ``filters`` (STS), then ``aws_routes``,
        else moto untouched.

        The operation is the ``X-Amz-Target`` suffix (JSON protocols), the ``Action`` of a query-protocol
        form (ELBv2, IAM, EC2...), or the operation an ``aws_routes`` entry names (REST protocols)."""
        method, path = str(environ.get("REQUEST_METHOD", "GET")).upper(), str(environ.get("PATH_INFO", ""))
        raw = _read_body(environ)
        route = next(
            ((op, handler, m) for verb, pattern, op, handler in self.aws_routes
             if verb == method and (m := pattern.match(path)) is not None),
            None,
        )  # fmt: skip
        operation = route[0] if route is not None else _operation_of(environ, raw)
        if operation and self.pre_request:
            injected = next((e for hook in self.pre_request if (e := hook(operation)) is not None), None)
            if injected is not None:
                return _respond(_protocol_error(environ, injected), start_response)
        for check in self.filters:
            answer = check(environ, raw)
            if answer is not None:
                status, data, content_type = answer
                return _respond(Reply(status, data, [("Content-Type", content_type)]), start_response)
        if route is None:
            return self.app(environ, start_response)
        return _respond(route[1](environ, route[2], raw), start_response)

    def control(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve a ``/_sandbox/...`` control request from ``control_routes`` (JSON in, JSON out)."""
        method, path = str(environ.get("REQUEST_METHOD", "GET")).upper(), str(environ["PATH_INFO"])
        raw = _read_body(environ)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        status, reply = 404, {"error": f"no control endpoint {path}"}
        if not isinstance(body, dict):
            status, reply = 400, {"error": "the request body is not a JSON object"}
        else:
            allowed = [m for m, pattern, _ in self.control_routes if pattern.match(path)]
            for route_method, pattern, handler in self.control_routes:
                match = pattern.match(path)
                if match is not None and route_method == method:
                    try:
                        with self.lock:
                            status, reply = 200, handler(match, body)
                    except (ValueError, TypeError, KeyError) as exc:
                        status, reply = 400, {"error": str(exc) or type(exc).__name__}
                    break
            else:
                if allowed:
                    status, reply = 405, {"error": f"{method} not allowed on {path}: {', '.join(allowed)}"}
        data = json.dumps(reply).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[status]
        start_response(
            f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    def dispatch(self, environ: dict[str, Any], operation: str, params: Json) -> Reply:
        call = Call(self, environ, operation, params)
        for hook in self.before_dispatch:
            hook()
        try:
            token = client_tokens.token_key(call)
            if token is not None and token in self.state.creations:
                creation = self.state.creations[token]
                return client_tokens.replay(call, creation, lambda op, ps: self.dispatch(environ, op, ps))
            handler = self.handlers.get(operation)
            reply = handler(call) if handler else call.forward()
            if reply.ok:
                body = reply.json()
                for post in self.post_processors.get(operation, ()):
                    body = post(call, body)
                reply = Reply(reply.status, body)
                if token is not None:
                    client_tokens.remember(self.state.creations, token, call, body)
            return reply
        except EcsError as exc:
            return _error_reply(exc)

    def call_moto(self, environ: dict[str, Any], operation: str, params: Json) -> Reply:
        """Run ``operation`` on moto in-process through its WSGI app, as if sent by the same client."""
        body = json.dumps(params).encode()
        inner = {k: v for k, v in environ.items() if k != "wsgi.input"}
        inner.update(
            {
                "HTTP_X_AMZ_TARGET": TARGET_PREFIX + operation,
                "CONTENT_TYPE": CONTENT_TYPE,
                "CONTENT_LENGTH": str(len(body)),
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/",
                "QUERY_STRING": "",
                "wsgi.input": io.BytesIO(body),
            }
        )
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers

        chunks = self.app(inner, start_response)
        try:
            data = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        status = captured.get("status", 500)
        headers = [(k, v) for k, v in captured.get("headers", []) if k.lower() not in {"content-length"}]
        if 200 <= status < 300:
            try:
                parsed = json.loads(data or b"{}")
            except ValueError:
                return Reply(status, data, headers)
            if isinstance(parsed, dict):
                return Reply(status, parsed)
        return Reply(status, data, headers)


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    data = stream.read(length) if stream is not None and length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(data)
    return data


def _operation_of(environ: dict[str, Any], raw: bytes) -> str:
    """The AWS operation of a non-ECS request: the X-Amz-Target suffix, or a query form's Action."""
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target:
        return target.rsplit(".", 1)[-1]
    form = urllib.parse.parse_qs(str(environ.get("QUERY_STRING", "")))
    if str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        form.update(urllib.parse.parse_qs(raw.decode("utf-8", errors="replace")))
    return (form.get("Action") or [""])[0]


def _protocol_error(environ: dict[str, Any], exc: EcsError) -> Reply:
    """An error reply in the request's protocol: XML for query forms, JSON (+ x-amzn-ErrorType) otherwise."""
    if environ.get("HTTP_X_AMZ_TARGET") or not str(environ.get("CONTENT_TYPE", "")).startswith(
        "application/x-www-form-urlencoded"
    ):
        return _error_reply(exc)
    body = (
        "<ErrorResponse><Error><Type>Sender</Type>"
        f"<Code>{xml_escape(exc.code)}</Code><Message>{xml_escape(exc.message)}</Message>"
        "</Error><RequestId>sandbox</RequestId></ErrorResponse>"
    )
    return Reply(exc.status, body.encode(), [("Content-Type", "text/xml")])


def _error_reply(exc: EcsError) -> Reply:
    return Reply(
        exc.status,
        json.dumps({"__type": exc.code, "message": exc.message}).encode(),
        [("Content-Type", CONTENT_TYPE), ("x-amzn-ErrorType", exc.code)],
    )


def _respond(reply: Reply, start_response: Callable[..., Any]) -> list[bytes]:
    if isinstance(reply.body, dict):
        data = json.dumps(reply.body).encode()
        headers = [("Content-Type", CONTENT_TYPE)]
    else:
        data = reply.body
        headers = list(reply.headers) or [("Content-Type", CONTENT_TYPE)]
    headers.append(("Content-Length", str(len(data))))
    reason = {
        200: "OK",
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }.get(reply.status, "")
    start_response(f"{reply.status} {reason}".strip(), headers)
    return [data]
