"""One ECS call through the overlay: the request (:class:`Call`), its reply (:class:`Reply`), ECS's error
reply (:class:`EcsError`), and what the overlay remembers that moto cannot hold (:class:`OverlayState`).

Every resource module (services, clusters, capacity providers, task definitions) and the simulator
answer an operation as a function of one :class:`Call`; :mod:`agent.sandbox.overlay.dispatch` builds the
calls and sends the replies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from moto.core import DEFAULT_ACCOUNT_ID
from moto.iam.models import get_account_id_from

Json = dict[str, Any]
Handler = Callable[["Call"], "Reply"]
PostProcessor = Callable[["Call", Json], Json]


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
    # (account, region, cluster, operation, clientToken) -> what that creation made (overlay.client_tokens)
    creations: dict[tuple[str, str, str, str, str], Any] = field(default_factory=dict)


class Overlay(Protocol):
    """What a :class:`Call` needs of the overlay it runs in (:class:`~agent.sandbox.overlay.EcsOverlay`)."""

    state: OverlayState
    now: Callable[[], float]  # the sandbox clock (epoch seconds) for createdAt, registeredAt...
    echo: str  # "ecs": task definitions come back with the defaults ECS adds; "verbatim": as registered

    def call_moto(self, environ: dict[str, Any], operation: str, params: Json) -> Reply: ...


# --------------------------------------------------------------------------------------------------
# One ECS call


class Call:
    """One ECS request: its operation, parsed parameters, and a way to ask moto things."""

    def __init__(self, overlay: Overlay, environ: dict[str, Any], operation: str, params: Json) -> None:
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
