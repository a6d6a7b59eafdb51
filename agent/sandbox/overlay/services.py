"""Services in the overlay: CreateService / UpdateService checked like ECS, and what moto drops.

moto drops capacityProviderStrategy (and reports launchType EC2), deploymentConfiguration,
healthCheckGracePeriodSeconds, enableExecuteCommand, enableECSManagedTags, placement settings,
availabilityZoneRebalancing and createdAt; UpdateService stores `taskDefinition` as written
(`web:3`) instead of the ARN. This module remembers those fields per service ARN and lays them over
moto's replies (:func:`merge_service`). Deployments, task sets and counts are the simulator's
(:mod:`agent.sandbox.simulator`).
"""

from __future__ import annotations

import copy

from agent.sandbox.overlay.calls import Call, EcsError, Json, Reply
from agent.sandbox.overlay.capacity_providers import (
    FARGATE_PROVIDERS,
    check_capacity_strategy,
    normalise_strategy,
)
from agent.sandbox.overlay.shapes import shape_members

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


def _uses_fargate(record: Json) -> bool:
    if record.get("capacityProviderStrategy"):
        return any(
            item.get("capacityProvider") in FARGATE_PROVIDERS for item in record["capacityProviderStrategy"]
        )
    return record.get("launchType") == "FARGATE"


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
        check_capacity_strategy(cluster, record["capacityProviderStrategy"])

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
    if not any(
        (record.get("deploymentController") or {}).get("type") == "CODE_DEPLOY"
        for record in call.state.services.values()
    ):
        return  # no service was created or updated with CODE_DEPLOY: moto holds none either
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
        check_capacity_strategy(
            call.describe_cluster(params.get("cluster")), params["capacityProviderStrategy"]
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
