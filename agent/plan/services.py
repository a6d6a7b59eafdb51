"""Services: the desired CreateService request from a manifest, and the normal form both sides are diffed in.

``create_service_request`` maps a ``Service`` spec whose references the observer has already resolved
(``{name: web-blue}`` replaced by an ARN or ID string) and its ``DeploymentStrategy`` onto the
CreateService API:

* ``loadBalancers[].targetGroup`` -> ``targetGroupArn``; ``alternateTargetGroup``,
  ``productionListenerRule``, ``testListenerRule`` and ``role`` -> ``advancedConfiguration``;
* ``tags: {k: v}`` -> ``[{key, value}]``, plus ``ecs-gitops:managed: true`` (what prune looks for);
* the strategy -> ``deploymentController`` + ``deploymentConfiguration`` (see
  :mod:`agent.plan.strategies`, whose names this module re-exports);
* for EXTERNAL services the task definition, load balancers, network configuration, launch type or
  capacity-provider strategy, platform version and service registries belong to a task set: they move
  to ``request["taskSet"]`` (CreateTaskSet parameters without ``cluster``/``service``, scale 100 %).

``normalise_service`` turns either a desired request or a DescribeServices entry into the same shape:
request fields only, ECS defaults filled (``platformVersion`` LATEST on Fargate, ``schedulingStrategy``
REPLICA, ``propagateTags`` NONE, managed tags and execute command off, grace period 0, rolling 200/100
with the circuit breaker off (``resetOnHealthyTask`` true), canary 5 % baked 10 minutes, linear steps of
10 % baked 6 minutes, ``deploymentController`` ECS, a lifecycle hook's ``targetType``
AWS_LAMBDA and timeout 1440 minutes / ROLLBACK), subnets/security groups/load balancers/
registries/constraints sorted (placement strategy keeps its order: it is evaluated in order), tags as a
sorted list, and ``taskDefinition`` as ``family:revision`` (``family:(new)`` for a revision not yet
registered). For an EXTERNAL service the task-set fields are read from ``taskSet`` (desired) or from
the PRIMARY task set (observed).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from agent.manifests.fields import SERVICE_REQUEST_FIELDS
from agent.plan.model import TaskDefinitionRef
from agent.plan.strategies import (
    DEFAULT_HOOK_TIMEOUT_MINUTES,
    HOOK_STAGES,
    PAUSE_STAGE,
    PAUSE_TIMEOUT_MINUTES,
    STEP_DEFAULTS,
    WINDOW_PAUSE_HOOK,
    deployment_settings,
    engine_of,
    lifecycle_hooks,
    live_strategy,
    resolve_strategy,
    switch_blocker,
    wanted_strategy,
)
from agent.plan.taskdefs import family_revision, prune
from agent.plan.values import alarm_name, duration_minutes, duration_seconds, ref, tags_list

__all__ = [
    "DEFAULT_HOOK_TIMEOUT_MINUTES",
    "HOOK_STAGES",
    "MANAGED_TAG",
    "MANAGED_TAG_KEY",
    "PAUSE_STAGE",
    "PAUSE_TIMEOUT_MINUTES",
    "STEP_DEFAULTS",
    "TASK_SET_FIELDS",
    "WINDOW_PAUSE_HOOK",
    "alarm_name",
    "create_service_request",
    "deployment_settings",
    "duration_minutes",
    "duration_seconds",
    "engine_of",
    "lifecycle_hooks",
    "live_strategy",
    "normalise_service",
    "ref",
    "resolve_strategy",
    "switch_blocker",
    "tags_list",
    "task_definition_label",
    "wanted_strategy",
]


# Service spec fields copied to CreateService as they are.
_NATIVE_FIELDS = (
    "desiredCount",
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "serviceRegistries",
    "healthCheckGracePeriodSeconds",
    "enableExecuteCommand",
    "enableECSManagedTags",
    "propagateTags",
    "placementConstraints",
    "placementStrategy",
    "schedulingStrategy",
    "availabilityZoneRebalancing",
    "serviceConnectConfiguration",
    "volumeConfigurations",
    "vpcLatticeConfigurations",
)

# With the EXTERNAL controller these belong to the task set, not to CreateService.
TASK_SET_FIELDS = (
    "taskDefinition",
    "loadBalancers",
    "networkConfiguration",
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "serviceRegistries",
)

# The tag on every service the agent creates or manages: prune (sync.prune) deletes only services carrying it.
MANAGED_TAG_KEY = "ecs-gitops:managed"
MANAGED_TAG = {"key": MANAGED_TAG_KEY, "value": "true"}
_FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


def _load_balancer(item: Mapping[str, Any], *, advanced: bool) -> dict[str, Any]:
    lb: dict[str, Any] = {}
    target_group = item.get("targetGroupArn", item.get("targetGroup"))
    if target_group is not None:
        lb["targetGroupArn"] = ref(target_group)
    for key in ("loadBalancerName", "containerName", "containerPort"):
        if item.get(key) is not None:
            lb[key] = item[key]
    if advanced:
        config = dict(item.get("advancedConfiguration") or {})
        for source, target in (
            ("alternateTargetGroup", "alternateTargetGroupArn"),
            ("productionListenerRule", "productionListenerRule"),
            ("testListenerRule", "testListenerRule"),
            ("role", "roleArn"),
        ):
            if item.get(source) is not None:
                config[target] = ref(item[source])
        if config:
            lb["advancedConfiguration"] = config
    return lb


def _network_configuration(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    out = copy.deepcopy(dict(value))
    awsvpc = out.get("awsvpcConfiguration")
    if isinstance(awsvpc, Mapping):
        awsvpc = dict(awsvpc)
        for key in ("subnets", "securityGroups"):
            if isinstance(awsvpc.get(key), list):
                awsvpc[key] = [ref(v) for v in awsvpc[key]]
        out["awsvpcConfiguration"] = awsvpc
    return out


def create_service_request(
    spec: Mapping[str, Any],
    *,
    service_name: str,
    cluster: str,
    task_definition: TaskDefinitionRef | str | None,
    strategy: Mapping[str, Any] | None = None,
    external_id: str | None = None,
    pause: bool = False,
) -> dict[str, Any]:
    """CreateService parameters for a Service spec (references already resolved), with the task-set part
    under ``taskSet`` when the strategy uses the agent engine (EXTERNAL controller).

    ``desiredCount`` is included only when the spec has it (otherwise autoscaling owns it). ``pause``: the
    service lists a maintenance window (an ecs-engine strategy then gets the agent's PAUSE hook).
    """
    request: dict[str, Any] = {"cluster": cluster, "serviceName": service_name}
    if task_definition is not None:
        request["taskDefinition"] = task_definition
    for key in _NATIVE_FIELDS:
        if spec.get(key) is not None:
            request[key] = copy.deepcopy(spec[key])
    if spec.get("role") is not None:
        request["role"] = ref(spec["role"])
    if spec.get("networkConfiguration") is not None:
        request["networkConfiguration"] = _network_configuration(spec["networkConfiguration"])
    controller, configuration = deployment_settings(strategy, pause)
    external = controller["type"] == "EXTERNAL"
    if spec.get("loadBalancers"):
        request["loadBalancers"] = [
            _load_balancer(item, advanced=not external)
            for item in spec["loadBalancers"]
            if isinstance(item, Mapping)
        ]
    tags = [t for t in tags_list(spec.get("tags")) if t["key"] != MANAGED_TAG_KEY]
    request["tags"] = sorted([*tags, dict(MANAGED_TAG)], key=lambda t: t["key"])
    request["deploymentController"] = controller
    if configuration is not None:
        request["deploymentConfiguration"] = configuration
    if external:
        task_set = {key: request.pop(key) for key in TASK_SET_FIELDS if key in request}
        task_set["scale"] = {"unit": "PERCENT", "value": 100.0}
        if external_id:
            task_set["externalId"] = external_id
        request["taskSet"] = task_set
    return request


def task_definition_label(value: Any) -> Any:
    """``family:revision`` for an ARN, ``family:revision`` or ``TaskDefinitionRef`` (``family:(new)``
    when the revision is not registered yet)."""
    if isinstance(value, TaskDefinitionRef):
        return family_revision(value.arn) if value.arn else f"{value.family}:(new)"
    if isinstance(value, str):
        return family_revision(value)
    return value


def _is_fargate(service: Mapping[str, Any]) -> bool:
    if service.get("launchType") == "FARGATE":
        return True
    strategy = service.get("capacityProviderStrategy") or []
    return any(isinstance(i, Mapping) and i.get("capacityProvider") in _FARGATE_PROVIDERS for i in strategy)


def _primary_task_set(service: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for task_set in service.get("taskSets") or []:
        if isinstance(task_set, Mapping) and task_set.get("status") == "PRIMARY":
            return task_set
    return None


def _deployment_configuration(config: Any, scheduling: str) -> Any:
    config = dict(config) if isinstance(config, Mapping) else {}
    if scheduling == "DAEMON":
        config.setdefault("maximumPercent", 100)
        config.setdefault("minimumHealthyPercent", 0)
    else:
        config.setdefault("maximumPercent", 200)
        config.setdefault("minimumHealthyPercent", 100)
    breaker = dict(config.get("deploymentCircuitBreaker") or {})
    breaker.setdefault("enable", False)
    breaker.setdefault("rollback", False)
    breaker.setdefault("resetOnHealthyTask", True)  # DeploymentCircuitBreaker: "The default is true."
    config["deploymentCircuitBreaker"] = breaker
    config.setdefault("strategy", "ROLLING")
    alarms = config.get("alarms")
    if isinstance(alarms, Mapping):
        names = sorted(str(alarm_name(a)) for a in alarms.get("alarmNames") or [])
        if not names and not alarms.get("enable"):
            config.pop("alarms")
        else:
            config["alarms"] = {
                "alarmNames": names,
                "enable": bool(alarms.get("enable")),
                "rollback": bool(alarms.get("rollback")),
            }
    for key, strategy in (("canaryConfiguration", "CANARY"), ("linearConfiguration", "LINEAR")):
        if config["strategy"] == strategy and config.get(key) is None:
            config[key] = {}
        if isinstance(config.get(key), Mapping):
            filled = {**STEP_DEFAULTS[key], **{k: v for k, v in config[key].items() if v is not None}}
            config[key] = {k: (float(v) if k.endswith("Percent") else v) for k, v in filled.items()}
    hooks = [_lifecycle_hook(h) for h in config.pop("lifecycleHooks", None) or [] if isinstance(h, Mapping)]
    if hooks:
        config["lifecycleHooks"] = _sort_canonically(hooks)
    return config


def _lifecycle_hook(hook: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in hook.items() if v is not None}
    out.setdefault("targetType", "AWS_LAMBDA")
    out["lifecycleStages"] = sorted(out.get("lifecycleStages") or [])
    timeout = dict(out.get("timeoutConfiguration") or {})
    timeout.setdefault("timeoutInMinutes", DEFAULT_HOOK_TIMEOUT_MINUTES)
    timeout.setdefault("action", "ROLLBACK")
    out["timeoutConfiguration"] = timeout
    if "roleArn" in out:
        out["roleArn"] = ref(out["roleArn"])
    return out


def _sort_canonically(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))


def normalise_service(request_like: Mapping[str, Any]) -> dict[str, Any]:
    """The comparable form of a desired CreateService request or of a DescribeServices entry; idempotent."""
    source = dict(request_like)
    if "serviceName" not in source and isinstance(source.get("service"), str):
        source["serviceName"] = source["service"]
    if "role" not in source and source.get("roleArn"):
        source["role"] = source["roleArn"]
    controller = (source.get("deploymentController") or {}).get("type", "ECS")
    service = {key: copy.deepcopy(source[key]) for key in SERVICE_REQUEST_FIELDS if key in source}
    if controller == "EXTERNAL":
        for key in TASK_SET_FIELDS:
            service.pop(key, None)
        task_set: Mapping[str, Any] | None
        if isinstance(source.get("taskSet"), Mapping):
            task_set = source["taskSet"]
        elif "taskSets" in source:
            task_set = _primary_task_set(source)
        else:  # already normalised: the task-set fields sit at the top level
            task_set = source
        for key in TASK_SET_FIELDS:
            if task_set is not None and key in task_set:
                service[key] = copy.deepcopy(task_set[key])
    service = prune(service)

    if "taskDefinition" in service:
        service["taskDefinition"] = task_definition_label(service["taskDefinition"])
    service.setdefault("schedulingStrategy", "REPLICA")
    service.setdefault("propagateTags", "NONE")
    service.setdefault("enableECSManagedTags", False)
    service.setdefault("enableExecuteCommand", False)
    service.setdefault("healthCheckGracePeriodSeconds", 0)
    service["deploymentController"] = {"type": controller}
    if _is_fargate(service):
        service.setdefault("platformVersion", "LATEST")
    service["deploymentConfiguration"] = _deployment_configuration(
        service.get("deploymentConfiguration"), service["schedulingStrategy"]
    )
    network = service.get("networkConfiguration")
    if isinstance(network, Mapping) and isinstance(network.get("awsvpcConfiguration"), Mapping):
        awsvpc = dict(network["awsvpcConfiguration"])
        for key in ("subnets", "securityGroups"):
            if isinstance(awsvpc.get(key), list):
                awsvpc[key] = sorted({str(ref(v)) for v in awsvpc[key]})
        awsvpc.setdefault("assignPublicIp", "DISABLED")
        service["networkConfiguration"] = {**network, "awsvpcConfiguration": awsvpc}
    strategy = service.get("capacityProviderStrategy")
    if isinstance(strategy, list):
        items = [{"base": 0, "weight": 0, **item} for item in strategy if isinstance(item, Mapping)]
        service["capacityProviderStrategy"] = sorted(items, key=lambda i: str(i.get("capacityProvider")))
    for key in ("loadBalancers", "serviceRegistries", "placementConstraints"):
        service[key] = _sort_canonically(service.get(key))
    if "tags" in service:
        service["tags"] = [t for t in tags_list(service["tags"]) if not t["key"].startswith("aws:")]
    return prune(service)
