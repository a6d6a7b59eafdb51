"""Task definitions in the overlay: RegisterTaskDefinition stored like ECS stores it, and what moto drops.

moto keeps `cpu: "0.5 vCPU"` as written (ECS stores "512"), drops enableFaultInjection and
trustedExecutionConfiguration, never sets registeredAt/registeredBy, and ignores ListTaskDefinitions'
sort and pagination.
"""

from __future__ import annotations

import copy

from agent.plan.taskdefs import cpu_units, memory_mib
from agent.sandbox.overlay.calls import Call, Json, Reply
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

# Task-level units as ECS stores them on register ("0.25 vCPU" -> "256", "1 GB" -> "1024"): the same
# conversion the planner normalises with, so the sandbox and the planner cannot disagree.
task_cpu_units = cpu_units
task_memory_mib = memory_mib


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
