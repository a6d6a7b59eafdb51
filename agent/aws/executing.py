"""Carry out a Plan's changes in ECS: the same Plan object ``plan`` rendered, nothing re-decided here.

The request conventions are those of ``agent.plan.planning``. Mutating calls are paced with token
buckets at ECS's limits (``agent.aws.pacing``); throttling that still happens is retried by botocore.
A crash at any point is healed by the next tick: registration is found again by its content-hash tag,
and every other call is an idempotent "make it so" of the desired state. RegisterTaskDefinition is the one
call botocore does not repeat by itself: when its answer is lost (the connection dropped after the request
went out, or a 5xx) it may have registered, so the family's newest revisions are searched for the
content-hash tag before it is sent again. CreateService and CreateTaskSet carry a ``clientToken`` derived
from the request itself (:func:`client_token`), so botocore's retry of a call whose answer was lost, or a
restarted agent sending the same request, gets the resource the first call made instead of a second one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, HTTPClientError

from agent.plan.model import CREATE, DELETE, REGISTER, UPDATE, Change, Plan, TaskDefinitionRef
from agent.plan.taskdefs import HASH_TAG

from .errors import translated
from .pacing import Pacer

log = structlog.get_logger()

LOOKBACK = 5  # newest revisions of a family searched for a registration whose answer was lost
THROTTLED = ("ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded")

# Operation names of update requests, in the boto3 client's snake_case.
_UPDATE_CALLS = {
    "updateCapacityProvider": "update_capacity_provider",
    "putClusterCapacityProviders": "put_cluster_capacity_providers",
    "updateClusterSettings": "update_cluster_settings",
    "updateCluster": "update_cluster",
    "updateService": "update_service",
    "tagResource": "tag_resource",
    "untagResource": "untag_resource",
    "deleteService": "delete_service",
}


TOKEN_PREFIX = "ecs-gitops-"
TOKEN_LENGTH = 36  # ECS: "Up to 36 ASCII characters in the range of 33-126 (inclusive) are allowed."


def client_token(operation: str, params: Mapping[str, Any], commit: str | None = None) -> str:
    """The ``clientToken`` of a CreateService or CreateTaskSet request: a digest of the operation, the
    request (cluster, service, task-definition revision, target groups, ``externalId``...) and the commit
    it applies, so the same request for the same commit always carries the same token and any other
    request another one.

    ECS (Ensuring idempotency, API reference): "If you retry a request that completed successfully using
    the same client token and the same parameters, the retry succeeds without performing any further
    actions." A token is at most 36 ASCII characters in the range 33-126.
    """
    body = {k: v for k, v in params.items() if k != "clientToken"}
    text = json.dumps([operation, commit, body], sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return TOKEN_PREFIX + digest[: TOKEN_LENGTH - len(TOKEN_PREFIX)]


@dataclass
class Applied:
    """What executing a plan did: ARNs registered by family, and each change carried out; ``revision`` is
    the commit the plan is of (the client tokens of its creations name it)."""

    registered: dict[str, str] = field(default_factory=dict)
    task_definitions: dict[str, str] = field(default_factory=dict)  # family -> ARN to run
    done: list[str] = field(default_factory=list)
    revision: str | None = None


def change_key(change: Change) -> str:
    return f"{change.kind}/{change.name}"


class Executor:
    """Sends the API calls a Plan's changes stand for."""

    def __init__(
        self,
        aws: Any,
        pacer: Pacer | None = None,
        before_call: Callable[[str, Change], None] | None = None,
        on_registered: Callable[..., Any] | None = None,
    ) -> None:
        self.aws = aws
        self.ecs = aws.client("ecs")
        self.pacer = pacer or Pacer()
        # A hook for tests (crash injection) and metrics: called before each mutating call.
        self.before_call = before_call
        # Told each revision registered, as DescribeTaskDefinition would return it (the Observer's cache).
        self.on_registered = on_registered

    def execute(
        self, plan: Plan, only: Iterable[str] | None = None, registered: Mapping[str, str] | None = None
    ) -> Applied:
        """Apply ``plan`` (or only the changes whose ``change_key`` is in ``only``), in plan order.

        Thread-safe: the reconciler runs one ``execute`` per service at once. ``registered`` (family ->
        ARN) are revisions an earlier ``execute`` of the same plan registered, for the services to use.
        """
        wanted = set(only) if only is not None else None
        applied = Applied(task_definitions=dict(registered or {}), revision=plan.revision)
        for change in plan.changes:
            if change.kind == "TaskDefinition" and change.request.get("taskDefinitionArn"):
                applied.task_definitions[change.name] = change.request["taskDefinitionArn"]
            if wanted is not None and change_key(change) not in wanted:
                continue
            if change.action not in (CREATE, UPDATE, REGISTER, DELETE):
                continue
            with translated():
                getattr(self, f"_{change.kind.lower()}_{change.action}")(change, applied)
            applied.done.append(change_key(change))
        return applied

    # -- calls -------------------------------------------------------------------------------------

    def _call(self, operation: str, change: Change, **params: Any) -> dict[str, Any]:
        return self.call("ecs", operation, change, **params)

    def call(self, api: str, operation: str, change: Change, /, **params: Any) -> dict[str, Any]:
        """One mutating call to AWS service ``api`` (``operation`` in boto3's snake_case) made for
        ``change``: the ``before_call`` hook first, then a token from the Pacer, a log line, the call.

        Other writers (agent.aws.traffic) go through here too, so crash tests and pacing see every write.
        """
        name = "".join(p.capitalize() for p in operation.split("_"))
        if self.before_call:
            self.before_call(name, change)
        self.pacer.acquire(name)
        log.info("aws.call", operation=name, resource=change_key(change))
        client = self.ecs if api == "ecs" else self.aws.client(api)
        return dict(getattr(client, operation)(**params))

    def _arn(self, ref: Any, applied: Applied) -> Any:
        if not isinstance(ref, TaskDefinitionRef):
            return ref
        arn = ref.arn or applied.registered.get(ref.family) or applied.task_definitions.get(ref.family)
        if arn is None:
            raise RuntimeError(f"task definition {ref.family} is neither registered nor known")
        return arn

    def _with_arns(self, params: dict[str, Any], applied: Applied) -> dict[str, Any]:
        out = dict(params)
        if "taskDefinition" in out:
            out["taskDefinition"] = self._arn(out["taskDefinition"], applied)
        return out

    def _taskdefinition_register(self, change: Change, applied: Applied) -> None:
        out = self._register(change)
        arn = out["taskDefinition"]["taskDefinitionArn"]
        applied.registered[change.name] = applied.task_definitions[change.name] = arn
        if self.on_registered is not None:
            # RegisterTaskDefinition answers what DescribeTaskDefinition would: no need to read it back.
            tags = out.get("tags") or change.request.get("tags") or []
            described = {"taskDefinition": out["taskDefinition"], "tags": tags}
            self.on_registered(described, registered=True, request=change.request)

    def _register(self, change: Change) -> dict[str, Any]:
        """RegisterTaskDefinition, sent once; an answer lost on the way back is looked for among the family's
        newest revisions (by content-hash tag) before the request is sent again, retried by botocore."""
        if self.before_call:
            self.before_call("RegisterTaskDefinition", change)
        self.pacer.acquire("RegisterTaskDefinition")
        log.info("aws.call", operation="RegisterTaskDefinition", resource=change_key(change))
        try:
            return dict(self.aws.client("ecs", retried=False).register_task_definition(**change.request))
        except ClientError as e:
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status < 500 and e.response.get("Error", {}).get("Code") not in THROTTLED:
                raise
            unknown = status >= 500
        except (EndpointConnectionError, ConnectTimeoutError):
            unknown = False  # never reached ECS
        except HTTPClientError:
            unknown = True  # sent; whether ECS registered it is unknown
        if unknown:
            found = self._registered_before(change)
            if found is not None:
                log.info(
                    "aws.register_found", family=change.name, arn=found["taskDefinition"]["taskDefinitionArn"]
                )
                return found
        self.pacer.acquire("RegisterTaskDefinition")
        log.info("aws.call", operation="RegisterTaskDefinition", resource=change_key(change), attempt="again")
        return dict(self.ecs.register_task_definition(**change.request))

    def _registered_before(self, change: Change) -> dict[str, Any] | None:
        """The family's revision (among its newest) tagged with this change's content hash, described. Each
        read takes its token from the task-definition read bucket the observer shares."""
        wanted = next(
            (t.get("value") for t in change.request.get("tags") or () if t.get("key") == HASH_TAG), None
        )
        if wanted is None:
            return None
        self.pacer.acquire("ListTaskDefinitions")
        listed = self.ecs.list_task_definitions(
            familyPrefix=change.name, status="ACTIVE", sort="DESC", maxResults=LOOKBACK
        )
        for arn in listed.get("taskDefinitionArns", []):
            if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] != change.name:
                continue
            self.pacer.acquire("DescribeTaskDefinition")
            out = self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
            tags = {t.get("key"): t.get("value") for t in out.get("tags") or ()}
            if tags.get(HASH_TAG) == wanted:
                return {"taskDefinition": out["taskDefinition"], "tags": out.get("tags") or []}
        return None

    def _cluster_create(self, change: Change, applied: Applied) -> None:
        self._call("create_cluster", change, **change.request)

    def _capacityprovider_create(self, change: Change, applied: Applied) -> None:
        self._call("create_capacity_provider", change, **change.request)

    def _service_create(self, change: Change, applied: Applied) -> None:
        request = dict(change.request)
        task_set = request.pop("taskSet", None)
        params = self._with_arns(request, applied)
        token = client_token("CreateService", params, applied.revision)
        out = self._call("create_service", change, **params, clientToken=token)
        if task_set is not None:
            self._replace_task_set(change, out["service"], task_set, applied)

    def _update(self, change: Change, applied: Applied) -> None:
        for op, params in change.request.items():
            if op == "taskSet":
                continue
            self._call(_UPDATE_CALLS[op], change, **self._with_arns(params, applied))
        if "taskSet" in change.request:
            service = self.ecs.describe_services(
                cluster=change.request["taskSet"].get("cluster") or change.name.split("/", 1)[0],
                services=[change.name.split("/", 1)[1]],
            )["services"][0]
            self._replace_task_set(change, service, change.request["taskSet"], applied)

    # A pruned service: updateService (desiredCount 0), then deleteService, in the request's order.
    _cluster_update = _capacityprovider_update = _service_update = _service_delete = _update

    def _replace_task_set(
        self, change: Change, service: dict[str, Any], task_set: dict[str, Any], applied: Applied
    ) -> None:
        """EXTERNAL controller, all at once: a new task set becomes primary, older ones go.

        The agent rollout engine replaces this with weighted, baked steps; this is its simplest case.
        """
        cluster, name = service["clusterArn"], service["serviceName"]
        params = self._with_arns(task_set, applied)
        existing = [
            ts
            for ts in service.get("taskSets") or ()
            if ts.get("externalId") == params.get("externalId")
            and ts.get("taskDefinition") == params.get("taskDefinition")
        ]
        if existing:
            arn = existing[0]["taskSetArn"]
        else:
            request = {"cluster": cluster, "service": name, **params}
            token = client_token("CreateTaskSet", request)
            arn = self._call("create_task_set", change, **request, clientToken=token)["taskSet"]["taskSetArn"]
        self._call(
            "update_service_primary_task_set", change, cluster=cluster, service=name, primaryTaskSet=arn
        )
        for ts in service.get("taskSets") or ():
            if ts["taskSetArn"] != arn:
                self._call(
                    "delete_task_set",
                    change,
                    cluster=cluster,
                    service=name,
                    taskSet=ts["taskSetArn"],
                    force=True,
                )
