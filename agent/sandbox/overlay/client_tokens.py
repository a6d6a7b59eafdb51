"""Idempotent creation with a ``clientToken``: CreateService and CreateTaskSet, as ECS answers them.

moto ignores ``clientToken``: its CreateService overwrites a service of the same name and CreateTaskSet makes
one task set per request, so a retried request whose first answer was lost creates a second resource. ECS
does not. Its API reference (Ensuring idempotency) says: "If you retry a request that completed
successfully using the same client token and the same parameters, the retry succeeds without performing any
further actions"; for CreateService and CreateTaskSet "The client token can be up to 36 ASCII characters in
the range of 33-126 (inclusive)"; and "Requests with the same token in the same cluster are idempotent".

The overlay keeps each successful creation's token by (account, region, cluster, operation, token). A
request with a known token performs nothing and answers the resource the first request made, as
DescribeServices / DescribeTaskSets show it now (the first answer when it is gone). ECS documents what a
reused token with different parameters gets only for RunTask (ConflictException); for these two operations
it documents nothing, and the sandbox answers the original resource then too.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from agent.sandbox.overlay.calls import Call, EcsError, Json, Reply

MAX_LENGTH = 36
# operation -> (the reply's key for the resource, the resource's ARN field)
IDEMPOTENT = {"CreateService": ("service", "serviceArn"), "CreateTaskSet": ("taskSet", "taskSetArn")}
TokenKey = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class Creation:
    """What a request with a client token created: the request (token aside) and the first answer."""

    params: Json
    body: Json

    def arn(self, operation: str) -> str:
        key, field = IDEMPOTENT[operation]
        return str(self.body[key][field])


def token_key(call: Call) -> TokenKey | None:
    """The key a creation with a client token is kept by; None for a call without one (or another call).
    A token ECS would refuse (longer than 36 characters, or outside ASCII 33-126) is refused."""
    token = call.params.get("clientToken")
    if call.operation not in IDEMPOTENT or token is None:
        return None
    if (
        not isinstance(token, str)
        or not 0 < len(token) <= MAX_LENGTH
        or any(not 33 <= ord(c) <= 126 for c in token)
    ):
        raise EcsError(
            "InvalidParameterException",
            f"clientToken must be 1 to {MAX_LENGTH} ASCII characters in the range 33-126.",
        )
    cluster = str(call.params.get("cluster") or "default").rsplit("/", 1)[-1]
    return (call.account, call.region, cluster, call.operation, token)


def remember(creations: dict[TokenKey, Creation], key: TokenKey, call: Call, body: Json) -> None:
    params = {k: v for k, v in call.params.items() if k != "clientToken"}
    creations[key] = Creation(copy.deepcopy(params), copy.deepcopy(body))


def replay(call: Call, creation: Creation, describe: Callable[[str, Json], Reply]) -> Reply:
    """The answer to a repeated request: the resource the first one made, described now (``describe`` runs
    an ECS operation through the overlay, so the reply is what DescribeServices / DescribeTaskSets show)."""
    arn = creation.arn(call.operation)
    cluster = call.params.get("cluster") or "default"
    if call.operation == "CreateService":
        reply = describe("DescribeServices", {"cluster": cluster, "services": [arn], "include": ["TAGS"]})
        found = reply.json().get("services") if reply.ok else None
        key = "service"
    else:
        service = call.params.get("service")
        params = {"cluster": cluster, "service": service, "taskSets": [arn], "include": ["TAGS"]}
        reply = describe("DescribeTaskSets", params)
        found = reply.json().get("taskSets") if reply.ok else None
        key = "taskSet"
    return Reply(200, {key: found[0]} if found else copy.deepcopy(creation.body))
