"""ECS overlay: WSGI middleware that makes moto's ECS answer like the real service.

moto stores ECS state but drops or mangles much of what our agent reads back (capacity-provider
strategies, deployment configuration, Managed Instances capacity providers, ``cpu: "0.5 vCPU"``...).
This middleware sits in front of moto's WSGI app and handles the ECS JSON protocol
(``X-Amz-Target: AmazonEC2ContainerServiceV20141113.<Operation>``):

* ``handlers`` maps an operation to a function that answers it (usually by patching the request,
  forwarding it to moto with :meth:`Call.forward`, and patching the reply);
* ``post_processors`` maps an operation to functions applied to moto's successful replies.

Both tables are plain dicts, so later features add entries instead of editing the dispatcher: the
deployment simulator (:mod:`agent.sandbox.simulator`) owns ``deployments``, task sets, counts and
events, and registers itself with :meth:`Simulator.install`, which also adds a ``before_dispatch``
hook (it catches up with its clock before each request) and ``control_routes`` (JSON endpoints under
``/_sandbox/``, outside ECS's target header). Requests for other services pass the ``pre_request``
hooks too (faults name any AWS operation, e.g. ELBv2's ``ModifyRule``) and then go to ``aws_routes``
(REST APIs the sandbox answers itself: Lambda Invoke, :mod:`agent.sandbox.lambdas`) or to moto
untouched. All ECS calls are serialised by one lock: moto is not thread-safe and the overlay state
must match it.

What is patched, and why, is listed next to each handler; the ECS output shapes come from botocore's
own model so that every reply parses with a real boto3 client.
"""

from __future__ import annotations

import copy
import io
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import botocore.session
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import get_account_id_from

from agent.plan.taskdefs import cpu_units, memory_mib

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
CONTENT_TYPE = "application/x-amz-json-1.1"
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")

Json = dict[str, Any]
Handler = Callable[["Call"], "Reply"]
PostProcessor = Callable[["Call", Json], Json]
# A control endpoint: (HTTP method, path regex, handler(match, JSON body) -> JSON reply).
ControlRoute = tuple[str, "re.Pattern[str]", Callable[["re.Match[str]", Json], Json]]
# A REST API the sandbox serves instead of moto (Lambda Invoke): (HTTP method, path regex, operation,
# handler(environ, match, raw body) -> Reply).
AwsRoute = tuple[str, "re.Pattern[str]", str, Callable[[dict[str, Any], "re.Match[str]", bytes], "Reply"]]
CONTROL_PREFIX = "/_sandbox/"


class EcsError(Exception):
    """An ECS error reply (``__type`` + ``message``), as botocore parses it into ClientError."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@dataclass
class Reply:
    """An HTTP reply: JSON when ``body`` is a dict, raw bytes otherwise (moto's errors, untouched)."""

    status: int
    body: Json | bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and isinstance(self.body, dict)

    def json(self) -> Json:
        assert isinstance(self.body, dict), "not a JSON reply"
        return self.body


# --------------------------------------------------------------------------------------------------
# botocore model helpers: the overlay's field lists are derived from the ECS model, not typed twice.


@cache
def _ecs_model() -> Any:
    return botocore.session.get_session().get_service_model("ecs")


def shape_members(shape_name: str) -> frozenset[str]:
    """Member names of an ECS model shape."""
    return frozenset(_ecs_model().shape_for(shape_name).members)


def conform(value: Any, shape_name: str) -> Any:
    """Deep-copy ``value`` keeping only what the ECS output shape ``shape_name`` declares."""
    return _conform(value, _ecs_model().shape_for(shape_name))


def _conform(value: Any, shape: Any) -> Any:
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _conform(v, shape.members[k]) for k, v in value.items() if k in shape.members}
    if shape.type_name == "list" and isinstance(value, list):
        return [_conform(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _conform(v, shape.value) for k, v in value.items()}
    return copy.deepcopy(value)


def shape_errors(value: Any, shape_name: str) -> list[str]:
    """Where raw JSON ``value`` does not fit the ECS shape ``shape_name``: unknown keys, wrong types,
    values outside an enum. botocore's parser silently drops unknown keys, so a reply can parse and
    still be wrong; tests run every simulated structure through this."""
    errors: list[str] = []
    _shape_errors(value, _ecs_model().shape_for(shape_name), shape_name, errors)
    return errors


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "blob": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "double": (int, float),
    "float": (int, float),
    "timestamp": (int, float),  # the JSON protocol sends epoch seconds
}


def _shape_errors(value: Any, shape: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object ({shape.name}), got {type(value).__name__}")
            return
        for key, item in value.items():
            if key not in shape.members:
                errors.append(f"{path}.{key}: not a member of {shape.name}")
            else:
                _shape_errors(item, shape.members[key], f"{path}.{key}", errors)
    elif kind == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _shape_errors(item, shape.member, f"{path}[{i}]", errors)
    elif kind == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        for key, item in value.items():
            _shape_errors(item, shape.value, f"{path}[{key!r}]", errors)
    else:
        wanted = _JSON_TYPES.get(kind, (object,))
        if not isinstance(value, wanted) or (kind != "boolean" and isinstance(value, bool)):
            errors.append(f"{path}: expected {kind}, got {type(value).__name__} {value!r}")
        elif kind == "string" and getattr(shape, "enum", None) and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")


# Service fields the overlay owns: every CreateService/UpdateService parameter that DescribeServices
# echoes back (moto drops most of them). desiredCount/taskDefinition/tags stay moto's (the simulator
# reports the taskDefinition its PRIMARY deployment runs, e.g. after a rollback); `role` is echoed as
# `roleArn`.
_MOTO_OWNED_SERVICE_FIELDS = frozenset(
    {"cluster", "serviceName", "service", "desiredCount", "taskDefinition", "tags"}
)
SERVICE_FIELDS = (
    (shape_members("CreateServiceRequest") | shape_members("UpdateServiceRequest")) & shape_members("Service")
) - _MOTO_OWNED_SERVICE_FIELDS
# Parameters that real ECS reports on the deployment rather than on the service.
DEPLOYMENT_FIELDS = (shape_members("CreateServiceRequest") & shape_members("Deployment")) - shape_members(
    "Service"
)
DEFAULT_DEPLOYMENT_CONFIGURATION: Json = {
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
}
SERVICE_DEFAULTS: Json = {
    "deploymentController": {"type": "ECS"},
    "enableECSManagedTags": False,
    "enableExecuteCommand": False,
    "propagateTags": "NONE",
}

# RegisterTaskDefinition parameters moto reads (moto/ecs/responses.py); the rest of the fields real
# ECS echoes back are kept by the overlay.
_MOTO_TASKDEF_PARAMS = frozenset(
    {
        "family",
        "containerDefinitions",
        "volumes",
        "tags",
        "networkMode",
        "placementConstraints",
        "requiresCompatibilities",
        "cpu",
        "memory",
        "taskRoleArn",
        "executionRoleArn",
        "proxyConfiguration",
        "inferenceAccelerators",
        "runtimePlatform",
        "ipcMode",
        "pidMode",
        "ephemeralStorage",
    }
)
TASKDEF_FIELDS = (
    shape_members("RegisterTaskDefinitionRequest") & shape_members("TaskDefinition")
) - _MOTO_TASKDEF_PARAMS
TASKDEF_DEFAULTS: Json = {"enableFaultInjection": False}

# Task-level units as ECS stores them on register ("0.25 vCPU" -> "256", "1 GB" -> "1024"): the same
# conversion the planner normalises with, so the sandbox and the planner cannot disagree.
task_cpu_units = cpu_units
task_memory_mib = memory_mib


# --------------------------------------------------------------------------------------------------
# State


@dataclass
class OverlayState:
    """What moto cannot hold, keyed like ECS keys it (ARNs; account, region, name for capacity providers)."""

    services: dict[str, Json] = field(default_factory=dict)  # service ARN -> remembered fields
    task_definitions: dict[str, Json] = field(default_factory=dict)  # task-definition ARN -> fields
    # (account, region, name) -> provider
    managed_providers: dict[tuple[str, str, str], Json] = field(default_factory=dict)
    # (account, region) -> names, in order
    asg_providers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    asg_patches: dict[str, Json] = field(default_factory=dict)  # provider ARN -> ASG provider fields


# --------------------------------------------------------------------------------------------------
# One ECS call


class Call:
    """One ECS request: its operation, parsed parameters, and a way to ask moto things."""

    def __init__(self, overlay: EcsOverlay, environ: dict[str, Any], operation: str, params: Json) -> None:
        self.overlay = overlay
        self.environ = environ
        self.operation = operation
        self.params = params
        self.region = region_of(environ)
        self.account = _account_of(environ)

    @property
    def state(self) -> OverlayState:
        return self.overlay.state

    def forward(self, params: Json | None = None, operation: str | None = None) -> Reply:
        """Send ``params`` (default: the caller's) as ``operation`` (default: this one) to moto."""
        return self.overlay.call_moto(
            self.environ, operation or self.operation, self.params if params is None else params
        )

    def moto(self, operation: str, params: Json) -> Json:
        """Ask moto for ``operation`` and return its JSON, raising its error as an :class:`EcsError`."""
        reply = self.forward(params, operation)
        if reply.ok:
            return reply.json()
        raise _error_from_reply(reply)

    @property
    def where(self) -> tuple[str, str]:
        """(account, region): moto keeps one state per account and region, and so does the overlay."""
        return (self.account, self.region)

    def arn(self, resource: str) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account}:{resource}"

    def describe_cluster(self, cluster: str | None) -> Json:
        out = self.moto("DescribeClusters", {"clusters": [cluster or "default"], "include": ["SETTINGS"]})
        clusters = [c for c in out.get("clusters", []) if c.get("status") == "ACTIVE"]
        if not clusters:
            raise EcsError("ClusterNotFoundException", "Cluster not found.")
        return clusters[0]


def region_of(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = re.search(r"Credential=[^/]+/\d+/([^/]+)/", auth)
    return match.group(1) if match else "us-east-1"


def _account_of(environ: dict[str, Any]) -> str:
    """The account a request acts in: the one moto maps its access key to (an assumed role's account)."""
    match = re.search(r"Credential=([^/,\s]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return get_account_id_from(match.group(1)) if match else DEFAULT_ACCOUNT_ID


def _error_from_reply(reply: Reply) -> EcsError:
    try:
        body = json.loads(reply.body) if isinstance(reply.body, bytes) else reply.body
        code = str(body.get("__type", "ClientException")).rsplit("#", 1)[-1]
        message = str(body.get("message") or body.get("Message") or "")
    except (ValueError, AttributeError):
        code, message = (
            "ServerException",
            reply.body.decode(errors="replace") if isinstance(reply.body, bytes) else "",
        )
    return EcsError(code, message, reply.status)


# --------------------------------------------------------------------------------------------------
# The middleware


class EcsOverlay:
    """WSGI middleware: ECS JSON requests go through ``handlers``/``post_processors``, the rest to moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]], now: Callable[[], float] = time.time) -> None:
        self.app = app
        self.lock = threading.RLock()
        self.state = OverlayState()
        self.now = now  # the sandbox clock (epoch seconds) for createdAt, registeredAt...
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
            handler = self.handlers.get(operation)
            reply = handler(call) if handler else call.forward()
            if reply.ok:
                body = reply.json()
                for post in self.post_processors.get(operation, ()):
                    body = post(call, body)
                reply = Reply(reply.status, body)
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


# --------------------------------------------------------------------------------------------------
# Services
#
# moto drops capacityProviderStrategy (and reports launchType EC2), deploymentConfiguration,
# healthCheckGracePeriodSeconds, enableExecuteCommand, enableECSManagedTags, placement settings,
# availabilityZoneRebalancing and createdAt; UpdateService stores `taskDefinition` as written
# (`web:3`) instead of the ARN. Deployments are the simulator's (agent/sandbox/simulator.py).


def _uses_fargate(record: Json) -> bool:
    if record.get("capacityProviderStrategy"):
        return any(
            item.get("capacityProvider") in FARGATE_PROVIDERS for item in record["capacityProviderStrategy"]
        )
    return record.get("launchType") == "FARGATE"


def _check_capacity_strategy(call: Call, cluster: Json, strategy: list[Json]) -> None:
    check_capacity_strategy(cluster, strategy)


def check_capacity_strategy(cluster: Json, strategy: list[Json]) -> None:
    """Every provider of ``strategy`` must be associated with ``cluster``, as ECS requires."""
    known = set(cluster.get("capacityProviders") or [])
    for item in strategy:
        name = item.get("capacityProvider")
        if name not in known:
            raise EcsError(
                "InvalidParameterException",
                f"The specified capacity provider strategy cannot contain a capacity provider that is not "
                f"associated with the cluster ({name}). Associate the capacity provider with the cluster "
                "or specify a valid capacity provider and try again.",
            )


def normalise_strategy(strategy: list[Json]) -> list[Json]:
    """ECS echoes a capacity-provider strategy with ``weight`` and ``base`` filled (default 0)."""
    return [
        {
            "capacityProvider": item.get("capacityProvider"),
            "weight": item.get("weight", 0),
            "base": item.get("base", 0),
        }
        for item in strategy
    ]


def _role_arn(call: Call, role: str) -> str:
    return role if role.startswith("arn:") else f"arn:aws:iam::{call.account}:role/{role}"


def _remember_service_fields(call: Call, record: Json, params: Json) -> None:
    for name in SERVICE_FIELDS:
        if name in params:
            record[name] = copy.deepcopy(params[name])
    if "role" in params:
        record["roleArn"] = _role_arn(call, params["role"])
    if "capacityProviderStrategy" in params:
        record["capacityProviderStrategy"] = normalise_strategy(params["capacityProviderStrategy"])


def create_service(call: Call) -> Reply:
    """CreateService: validate like ECS, let moto store the service, remember what moto drops."""
    params = call.params
    if params.get("launchType") and params.get("capacityProviderStrategy"):
        raise EcsError(
            "InvalidParameterException",
            "Specifying both a launch type and capacity provider strategy is not supported. "
            "Remove one and try again.",
        )
    cluster = call.describe_cluster(params.get("cluster"))
    record: Json = {}
    _remember_service_fields(call, record, params)
    if not record.get("launchType") and not record.get("capacityProviderStrategy"):
        default = cluster.get("defaultCapacityProviderStrategy") or []
        if default:
            record["capacityProviderStrategy"] = normalise_strategy(default)
        else:
            record["launchType"] = "EC2"
    if record.get("capacityProviderStrategy"):
        record.pop("launchType", None)
        _check_capacity_strategy(call, cluster, record["capacityProviderStrategy"])

    to_moto = {k: v for k, v in params.items() if k != "capacityProviderStrategy"}
    if to_moto.get("launchType") not in (None, "EC2", "FARGATE"):
        to_moto.pop("launchType")  # moto knows only EC2 and FARGATE (EXTERNAL is real)
    if record.get("capacityProviderStrategy"):
        to_moto["launchType"] = "FARGATE" if _uses_fargate(record) else "EC2"
    reply = call.forward(to_moto)
    if not reply.ok:
        return reply
    body = reply.json()
    service = body["service"]
    record["createdAt"] = call.overlay.now()
    call.state.services[service["serviceArn"]] = record
    body["service"] = merge_service(call, service)
    return Reply(reply.status, body)


# What UpdateService cannot change on a CODE_DEPLOY service: a CodeDeploy deployment must (ECS's words).
_CODE_DEPLOY_FIXED = ("taskDefinition", "loadBalancers", "networkConfiguration", "platformVersion")


def _check_code_deploy_update(call: Call, params: Json) -> None:
    """ECS refuses these changes on a CODE_DEPLOY service unless the same call moves it to the ECS
    controller (the migration ECS allows: CODE_DEPLOY -> ECS)."""
    if not any(k in params for k in _CODE_DEPLOY_FIXED) or not params.get("service"):
        return
    out = call.moto(
        "DescribeServices", {"cluster": params.get("cluster") or "default", "services": [params["service"]]}
    )
    services = [merge_service(call, s) for s in out.get("services") or [] if s.get("status") == "ACTIVE"]
    current = (services[0].get("deploymentController") or {}).get("type") if services else None
    wanted = (params.get("deploymentController") or {}).get("type", current)
    if current == "CODE_DEPLOY" and wanted != "ECS":
        what = next(k for k in _CODE_DEPLOY_FIXED if k in params)
        raise EcsError(
            "InvalidParameterException",
            f"Unable to update {what} on services with a CODE_DEPLOY deployment controller. "
            "Use AWS CodeDeploy to trigger a new deployment.",
        )


def update_service(call: Call) -> Reply:
    """UpdateService: store the task definition as an ARN like ECS, and remember what moto drops."""
    params = dict(call.params)
    _check_code_deploy_update(call, params)
    if params.get("taskDefinition"):
        described = call.moto("DescribeTaskDefinition", {"taskDefinition": params["taskDefinition"]})
        params["taskDefinition"] = described["taskDefinition"]["taskDefinitionArn"]
    if params.get("capacityProviderStrategy"):
        _check_capacity_strategy(
            call, call.describe_cluster(params.get("cluster")), params["capacityProviderStrategy"]
        )
    reply = call.forward(params)
    if not reply.ok:
        return reply
    body = reply.json()
    service = body["service"]
    record = call.state.services.setdefault(service["serviceArn"], {"createdAt": call.overlay.now()})
    _remember_service_fields(call, record, params)
    if record.get("capacityProviderStrategy"):
        record.pop("launchType", None)
    body["service"] = merge_service(call, service)
    return Reply(reply.status, body)


def merge_service(call: Call, service: Json) -> Json:
    """Overlay the remembered fields and ECS defaults onto one service as moto describes it."""
    record = call.state.services.get(service.get("serviceArn", ""), {})
    for name, value in record.items():
        service[name] = copy.deepcopy(value)
    for name, value in SERVICE_DEFAULTS.items():
        service.setdefault(name, copy.deepcopy(value))
    if service.get("capacityProviderStrategy"):
        service.pop("launchType", None)
    if _uses_fargate(service):
        service.setdefault("platformVersion", "LATEST")
        service["platformFamily"] = "Linux"
    else:
        service.pop("platformFamily", None)
    deployment_configuration = copy.deepcopy(DEFAULT_DEPLOYMENT_CONFIGURATION)
    deployment_configuration.update(service.get("deploymentConfiguration") or {})
    service["deploymentConfiguration"] = deployment_configuration
    return service  # deployments, task sets and counts: the simulator's post-processors


def describe_services_post(call: Call, body: Json) -> Json:
    body["services"] = [merge_service(call, s) for s in body.get("services") or []]
    return body


def delete_service_post(call: Call, body: Json) -> Json:
    if body.get("service"):
        body["service"] = merge_service(call, body["service"])
    return body


# --------------------------------------------------------------------------------------------------
# Capacity providers
#
# moto crashes (HTTP 500) on managedInstancesProvider, so Managed Instances providers live in the
# overlay. moto also: crashes on DescribeCapacityProviders without names, never returns the FARGATE
# and FARGATE_SPOT providers, ignores managedDraining on update, returns tags without include=TAGS,
# omits `type`, and spells failure ARNs `capacity_provider/`.


def _managed_key(call: Call, name_or_arn: str) -> tuple[str, str]:
    return (*call.where, name_or_arn.rsplit("/", 1)[-1])


def _builtin_provider(call: Call, name: str) -> Json:
    return {
        "capacityProviderArn": call.arn(f"capacity-provider/{name}"),
        "name": name,
        "status": "ACTIVE",
        "tags": [],
        "type": name,
    }


def _check_provider_name(name: str) -> None:
    if not name or not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", name):
        raise EcsError(
            "ClientException", "Invalid capacity provider name: up to 255 letters, numbers, '_' or '-'."
        )
    if name.lower().startswith(("aws", "ecs", "fargate")):
        raise EcsError(
            "ClientException", "The capacity provider name can't be prefixed with 'aws', 'ecs' or 'fargate'."
        )


def create_capacity_provider(call: Call) -> Reply:
    """CreateCapacityProvider: Managed Instances in the overlay, Auto Scaling group providers in moto."""
    params = call.params
    name = params.get("name", "")
    _check_provider_name(name)
    if call.state.managed_providers.get(_managed_key(call, name)) or name in call.state.asg_providers.get(
        call.where, []
    ):
        raise EcsError("ClientException", f"A capacity provider with the name {name} already exists.")
    managed = params.get("managedInstancesProvider")
    if managed is not None and params.get("autoScalingGroupProvider") is not None:
        raise EcsError(
            "ClientException",
            "Specify either autoScalingGroupProvider or managedInstancesProvider, not both.",
        )
    if managed is None:
        reply = call.forward({k: v for k, v in params.items() if k != "cluster"})
        if reply.ok:
            call.state.asg_providers.setdefault(call.where, []).append(name)
            provider = reply.json()["capacityProvider"]
            patch: Json = {"managedDraining": "ENABLED"}
            if "managedDraining" in (params.get("autoScalingGroupProvider") or {}):
                patch["managedDraining"] = params["autoScalingGroupProvider"]["managedDraining"]
            call.state.asg_patches[provider["capacityProviderArn"]] = patch
        return reply
    if not params.get("cluster"):
        raise EcsError(
            "InvalidParameterException", "cluster is required for a Managed Instances capacity provider."
        )
    cluster = call.describe_cluster(params["cluster"])
    if not managed.get("infrastructureRoleArn") or not managed.get("instanceLaunchTemplate"):
        raise EcsError(
            "InvalidParameterException",
            "managedInstancesProvider needs infrastructureRoleArn and instanceLaunchTemplate.",
        )
    provider = {
        "capacityProviderArn": call.arn(f"capacity-provider/{name}"),
        "name": name,
        "cluster": cluster["clusterName"],
        "status": "ACTIVE",
        "managedInstancesProvider": conform(managed, "ManagedInstancesProvider"),
        "tags": copy.deepcopy(params.get("tags") or []),
        "type": "MANAGED_INSTANCES",
    }
    call.state.managed_providers[_managed_key(call, name)] = provider
    return Reply(200, {"capacityProvider": copy.deepcopy(provider)})


def update_capacity_provider(call: Call) -> Reply:
    """UpdateCapacityProvider: merge Managed Instances changes; keep managedDraining moto ignores."""
    params = call.params
    managed = call.state.managed_providers.get(_managed_key(call, params.get("name", "")))
    if managed is None:
        reply = call.forward(
            {k: v for k, v in params.items() if k not in ("cluster", "managedInstancesProvider")}
        )
        if reply.ok:
            arn = reply.json()["capacityProvider"]["capacityProviderArn"]
            draining = (params.get("autoScalingGroupProvider") or {}).get("managedDraining")
            if draining:
                call.state.asg_patches.setdefault(arn, {})["managedDraining"] = draining
        return reply
    if params.get("cluster") and params["cluster"].rsplit("/", 1)[-1] != managed["cluster"]:
        raise EcsError(
            "ClientException",
            f"The capacity provider {managed['name']} is not in cluster {params['cluster']}.",
        )
    changes = params.get("managedInstancesProvider")
    if not changes:
        raise EcsError(
            "InvalidParameterException", "managedInstancesProvider is required for this capacity provider."
        )
    current = managed["managedInstancesProvider"]
    changes = conform(changes, "ManagedInstancesProvider")
    # InstanceLaunchTemplateUpdate lacks create-only fields (capacityOptionType, fipsEnabled...): keep them.
    template = {**current.get("instanceLaunchTemplate", {}), **changes.pop("instanceLaunchTemplate", {})}
    merged = {**current, **changes, "instanceLaunchTemplate": template}
    managed["managedInstancesProvider"] = merged
    managed["updateStatus"] = "UPDATE_COMPLETE"
    return Reply(200, {"capacityProvider": copy.deepcopy(managed)})


def delete_capacity_provider(call: Call) -> Reply:
    params = call.params
    key = _managed_key(call, params.get("capacityProvider", ""))
    managed = call.state.managed_providers.get(key)
    if managed is None:
        reply = call.forward({k: v for k, v in params.items() if k != "cluster"})
        if reply.ok:
            name = reply.json()["capacityProvider"]["name"]
            names = call.state.asg_providers.get(call.where, [])
            if name in names:
                names.remove(name)
        return reply
    del call.state.managed_providers[key]
    gone = {**copy.deepcopy(managed), "status": "INACTIVE", "updateStatus": "DELETE_COMPLETE"}
    return Reply(200, {"capacityProvider": gone})


def describe_capacity_providers(call: Call) -> Reply:
    """DescribeCapacityProviders over moto's ASG providers, FARGATE/FARGATE_SPOT and the overlay's own."""
    params = call.params
    cluster = call.describe_cluster(params["cluster"]) if params.get("cluster") else None
    managed_here = [
        p
        for (*where, _), p in call.state.managed_providers.items()
        if tuple(where) == call.where and (cluster is None or p["cluster"] == cluster["clusterName"])
    ]
    names = params.get("capacityProviders")
    if names is None:
        names = [*FARGATE_PROVIDERS, *call.state.asg_providers.get(call.where, [])]
        if cluster is not None:
            names += [p["name"] for p in managed_here]
    found: dict[str, Json] = {}
    failures: list[Json] = []
    asked_moto: list[str] = []
    for name in names:
        short = name.rsplit("/", 1)[-1]
        if short in FARGATE_PROVIDERS:
            found[name] = _builtin_provider(call, short)
        elif any(p["name"] == short for p in managed_here):
            found[name] = copy.deepcopy(next(p for p in managed_here if p["name"] == short))
        else:
            asked_moto.append(name)
    if asked_moto:
        out = call.moto("DescribeCapacityProviders", {"capacityProviders": asked_moto})
        for provider in out.get("capacityProviders", []):
            key = next(n for n in asked_moto if n in (provider["name"], provider["capacityProviderArn"]))
            found[key] = _patch_asg_provider(call, provider)
        for failure in out.get("failures", []):
            failures.append(
                {
                    **failure,
                    "arn": failure.get("arn", "").replace(":capacity_provider/", ":capacity-provider/"),
                }
            )
    providers = [found[n] for n in names if n in found]
    if cluster is not None:
        associated = set(cluster.get("capacityProviders") or [])
        providers = [p for p in providers if p.get("type") == "MANAGED_INSTANCES" or p["name"] in associated]
    if "TAGS" not in (params.get("include") or []):
        for provider in providers:
            provider.pop("tags", None)
    start = int(params.get("nextToken") or 0)
    size = int(params.get("maxResults") or 10)
    body: Json = {"capacityProviders": providers[start : start + size], "failures": failures}
    if start + size < len(providers):
        body["nextToken"] = str(start + size)
    return Reply(200, body)


def _patch_asg_provider(call: Call, provider: Json) -> Json:
    provider["type"] = "EC2_AUTOSCALING"
    asg = provider.get("autoScalingGroupProvider")
    if asg is not None:
        asg.update(call.state.asg_patches.get(provider["capacityProviderArn"], {}))
    return provider


def capacity_provider_post(call: Call, body: Json) -> Json:
    """Create/Update/Delete replies for ASG providers from moto: add `type` and kept fields."""
    provider = body.get("capacityProvider")
    if provider and provider.get("type") != "MANAGED_INSTANCES":
        body["capacityProvider"] = _patch_asg_provider(call, provider)
    return body


# --------------------------------------------------------------------------------------------------
# Clusters
#
# moto does not implement UpdateClusterSettings, accepts unknown capacity providers, and always
# returns settings/configuration (real ECS only with include=SETTINGS / CONFIGURATIONS).


def _check_cluster_providers(
    call: Call, cluster_name: str | None, providers: list[str] | None, strategy: list[Json] | None
) -> None:
    providers = providers or []
    for name in providers:
        if name in FARGATE_PROVIDERS or name in call.state.asg_providers.get(call.where, []):
            continue
        managed = call.state.managed_providers.get(_managed_key(call, name))
        if managed and managed["cluster"] == (cluster_name or "default").rsplit("/", 1)[-1]:
            continue
        raise EcsError(
            "InvalidParameterException",
            f"The specified capacity provider {name} is not in an ACTIVE state or does not exist.",
        )
    for item in strategy or []:
        if item.get("capacityProvider") not in providers:
            raise EcsError(
                "InvalidParameterException",
                "The specified capacity provider strategy contains a capacity provider "
                f"({item.get('capacityProvider')}) that is not associated with the cluster.",
            )


def create_cluster(call: Call) -> Reply:
    params = call.params
    _check_cluster_providers(
        call,
        params.get("clusterName"),
        params.get("capacityProviders"),
        params.get("defaultCapacityProviderStrategy"),
    )
    return call.forward()


def put_cluster_capacity_providers(call: Call) -> Reply:
    params = call.params
    call.describe_cluster(params.get("cluster"))
    _check_cluster_providers(
        call,
        params.get("cluster"),
        params.get("capacityProviders"),
        params.get("defaultCapacityProviderStrategy"),
    )
    return call.forward()


def update_cluster_settings(call: Call) -> Reply:
    """UpdateClusterSettings (not in moto): moto's UpdateCluster takes the same settings."""
    params = call.params
    call.describe_cluster(params.get("cluster"))
    return call.forward(
        {"cluster": params.get("cluster"), "settings": params.get("settings") or []}, "UpdateCluster"
    )


def _normalise_cluster(cluster: Json) -> Json:
    if cluster.get("defaultCapacityProviderStrategy"):
        cluster["defaultCapacityProviderStrategy"] = normalise_strategy(
            cluster["defaultCapacityProviderStrategy"]
        )
    return cluster


def cluster_post(call: Call, body: Json) -> Json:
    """Create/Update/PutClusterCapacityProviders/Delete replies: strategies echoed with defaults."""
    if body.get("cluster"):
        body["cluster"] = _normalise_cluster(body["cluster"])
    return body


def describe_clusters_post(call: Call, body: Json) -> Json:
    include = set(call.params.get("include") or [])
    for cluster in body.get("clusters") or []:
        _normalise_cluster(cluster)
        if "SETTINGS" not in include:
            cluster.pop("settings", None)
        if "CONFIGURATIONS" not in include:
            cluster.pop("configuration", None)
    return body


# --------------------------------------------------------------------------------------------------
# Task definitions
#
# moto keeps `cpu: "0.5 vCPU"` as written (ECS stores "512"), drops enableFaultInjection and
# trustedExecutionConfiguration, never sets registeredAt/registeredBy, and ignores ListTaskDefinitions'
# sort and pagination.


def register_task_definition(call: Call) -> Reply:
    params = dict(call.params)
    if isinstance(params.get("cpu"), str):
        params["cpu"] = task_cpu_units(params["cpu"])
    if isinstance(params.get("memory"), str):
        params["memory"] = task_memory_mib(params["memory"])
    reply = call.forward({k: v for k, v in params.items() if k not in TASKDEF_FIELDS})
    if not reply.ok:
        return reply
    body = reply.json()
    record: Json = {
        **copy.deepcopy(TASKDEF_DEFAULTS),
        **{k: copy.deepcopy(params[k]) for k in TASKDEF_FIELDS if k in params},
    }
    record["registeredAt"] = call.overlay.now()
    record["registeredBy"] = f"arn:aws:iam::{call.account}:root"
    call.state.task_definitions[body["taskDefinition"]["taskDefinitionArn"]] = record
    return Reply(reply.status, task_definition_post(call, body))


def task_definition_post(call: Call, body: Json) -> Json:
    definition = body.get("taskDefinition")
    if definition:
        definition.update(copy.deepcopy(call.state.task_definitions.get(definition["taskDefinitionArn"], {})))
    return body


def _revision_key(arn: str) -> tuple[str, int]:
    family, _, revision = arn.rsplit("/", 1)[-1].rpartition(":")
    return family, int(revision) if revision.isdigit() else 0


def list_task_definitions_post(call: Call, body: Json) -> Json:
    arns = sorted(
        body.get("taskDefinitionArns") or [], key=_revision_key, reverse=call.params.get("sort") == "DESC"
    )
    start = int(call.params.get("nextToken") or 0)
    size = int(call.params.get("maxResults") or 100)
    body["taskDefinitionArns"] = arns[start : start + size]
    body.pop("nextToken", None)
    if start + size < len(arns):
        body["nextToken"] = str(start + size)
    return body


# --------------------------------------------------------------------------------------------------

DEFAULT_HANDLERS: dict[str, Handler] = {
    "CreateService": create_service,
    "UpdateService": update_service,
    "CreateCapacityProvider": create_capacity_provider,
    "UpdateCapacityProvider": update_capacity_provider,
    "DeleteCapacityProvider": delete_capacity_provider,
    "DescribeCapacityProviders": describe_capacity_providers,
    "CreateCluster": create_cluster,
    "PutClusterCapacityProviders": put_cluster_capacity_providers,
    "UpdateClusterSettings": update_cluster_settings,
    "RegisterTaskDefinition": register_task_definition,
}

DEFAULT_POST_PROCESSORS: dict[str, list[PostProcessor]] = {
    "DescribeServices": [describe_services_post],
    "DeleteService": [delete_service_post],
    "CreateCapacityProvider": [capacity_provider_post],
    "UpdateCapacityProvider": [capacity_provider_post],
    "DeleteCapacityProvider": [capacity_provider_post],
    "DescribeClusters": [describe_clusters_post],
    "CreateCluster": [cluster_post],
    "UpdateCluster": [cluster_post],
    "UpdateClusterSettings": [cluster_post],
    "PutClusterCapacityProviders": [cluster_post],
    "DeleteCluster": [cluster_post],
    "DescribeTaskDefinition": [task_definition_post],
    "DeregisterTaskDefinition": [task_definition_post],
    "ListTaskDefinitions": [list_task_definitions_post],
}
