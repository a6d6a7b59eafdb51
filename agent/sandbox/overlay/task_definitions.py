"""Task definitions in the overlay: RegisterTaskDefinition stored like ECS stores it, and what moto drops.

moto keeps `cpu: "0.5 vCPU"` as written (ECS stores "512"), drops enableFaultInjection and
trustedExecutionConfiguration, never sets registeredAt/registeredBy, and ignores ListTaskDefinitions'
sort and pagination. It is also stricter than ECS: it refuses an EC2 container that has only a
``memoryReservation`` (ECS registered AWS's amazon-ecs-for-beginners ``catsdef``, whose FireLens
``log_router`` has only ``memoryReservation: 50``).

With ``echo`` "ecs" (the default) a registered task definition comes back as ECS describes it: the
defaults ECS adds are filled in where the request left them out (the rows of
``agent.plan.defaults.ECHOED``, and ``hostPort`` per network mode), so everything that goes through the
sandbox exercises the planner's normaliser. ``echo`` "verbatim" stores what moto stores, for tests that
need the request back as it was sent.
"""

from __future__ import annotations

import copy

from agent.plan.defaults import echoed_rows, holders, split
from agent.plan.taskdefs import cpu_units, memory_mib
from agent.sandbox.overlay.calls import Call, EcsError, Json, Reply
from agent.sandbox.overlay.shapes import shape_members

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
ECHO_ECS, ECHO_VERBATIM = "ecs", "verbatim"
ECHO_MODES = (ECHO_ECS, ECHO_VERBATIM)
# What moto adds to every container definition (moto/ecs/models.py TaskDefinition), ECS does the same.
_MOTO_CONTAINER_DEFAULTS: Json = {
    "cpu": 0,
    "portMappings": [],
    "essential": True,
    "environment": [],
    "mountPoints": [],
    "volumesFrom": [],
}

# Task-level units as ECS stores them on register ("0.25 vCPU" -> "256", "1 GB" -> "1024"): the same
# conversion the planner normalises with, so the sandbox and the planner cannot disagree.
task_cpu_units = cpu_units
task_memory_mib = memory_mib


def register_task_definition(call: Call) -> Reply:
    params = copy.deepcopy(dict(call.params))
    if isinstance(params.get("cpu"), str):
        params["cpu"] = task_cpu_units(params["cpu"])
    if isinstance(params.get("memory"), str):
        params["memory"] = task_memory_mib(params["memory"])
    containers = params.get("containerDefinitions")
    if isinstance(containers, list):
        error = _memory_error(params)
        if error is not None:
            raise error
    if getattr(call.overlay, "echo", ECHO_ECS) == ECHO_ECS:
        add_ecs_defaults(params)
    forwarded = {k: v for k, v in params.items() if k not in TASKDEF_FIELDS}
    if isinstance(containers, list):
        # moto wants a hard limit on every EC2 container; ECS takes a reservation (checked above), so moto
        # gets a stand-in and the record keeps the containers as registered.
        forwarded["containerDefinitions"] = [
            {**c, "memory": c.get("memory") or 1} if isinstance(c, dict) else c for c in containers
        ]
    reply = call.forward(forwarded)
    if not reply.ok:
        return reply
    body = reply.json()
    record: Json = {
        **copy.deepcopy(TASKDEF_DEFAULTS),
        **{k: copy.deepcopy(params[k]) for k in TASKDEF_FIELDS if k in params},
    }
    if isinstance(containers, list):
        record["containerDefinitions"] = [
            {**_MOTO_CONTAINER_DEFAULTS, **copy.deepcopy(c)} if isinstance(c, dict) else c for c in containers
        ]
    record["registeredAt"] = call.overlay.now()
    record["registeredBy"] = f"arn:aws:iam::{call.account}:root"
    call.state.task_definitions[body["taskDefinition"]["taskDefinitionArn"]] = record
    return Reply(reply.status, task_definition_post(call, body))


def _memory_error(params: Json) -> EcsError | None:
    """ECS's own memory rule, no stricter. ContainerDefinition memory: "If using the EC2 launch type, you
    must specify either a task-level memory value or a container-level memory value." A reservation is a
    container-level value (the amazon-ecs-for-beginners catsdef registered with one alone)."""
    if params.get("memory"):
        return None
    for container in params.get("containerDefinitions") or []:
        if not isinstance(container, dict):
            continue
        if container.get("memory") is None and container.get("memoryReservation") is None:
            return EcsError(
                "ClientException",
                f"Invalid setting for container '{container.get('name')}'. At least one of 'memory' or "
                "'memoryReservation' must be specified.",
            )
    return None


def add_ecs_defaults(params: Json) -> None:
    """Fill in, in place, what ECS's DescribeTaskDefinition shows for fields the request left out."""
    for row in echoed_rows():
        parts = split(row.path)
        for holder in holders(params, parts):
            if holder.get(parts[-1]) is None:
                holder[parts[-1]] = copy.deepcopy(row.value)
    # PortMapping hostPort: "If you use containers in a task with the awsvpc or host network mode, the
    # hostPort can either be left blank or set to the same value as the containerPort. If you use
    # containers in a task with the bridge network mode, ... you can omit the hostPort (or set it to 0)"
    # -- ECS describes the first as containerPort and the second as 0.
    fargate = "FARGATE" in (params.get("requiresCompatibilities") or [])
    mode = params.get("networkMode") or ("awsvpc" if fargate else "bridge")
    for container in params.get("containerDefinitions") or []:
        for mapping in (container.get("portMappings") or []) if isinstance(container, dict) else []:
            if not isinstance(mapping, dict) or mapping.get("hostPort") is not None:
                continue
            if mapping.get("containerPort") is None:
                continue
            mapping["hostPort"] = mapping["containerPort"] if mode in ("awsvpc", "host") else 0


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
