"""Services: the desired CreateService request from a manifest, and the normal form both sides are diffed in.

``create_service_request`` maps a ``Service`` spec whose references the observer has already resolved
(``{name: web-blue}`` replaced by an ARN or ID string) and its ``DeploymentStrategy`` onto the
CreateService API:

* ``loadBalancers[].targetGroup`` -> ``targetGroupArn``; ``alternateTargetGroup``,
  ``productionListenerRule``, ``testListenerRule`` and ``role`` -> ``advancedConfiguration``;
* ``tags: {k: v}`` -> ``[{key, value}]``, plus ``ecs-gitops:managed: true`` (what prune looks for);
* the strategy -> ``deploymentController`` + ``deploymentConfiguration``: ``rolling`` (and no strategy)
  -> ECS controller, ``strategy: ROLLING``, percents, circuit breaker (default on, with rollback) and
  alarms; engine ``ecs`` -> ECS controller with ``strategy`` BLUE_GREEN / CANARY / LINEAR,
  ``bakeTimeInMinutes`` (0 when the strategy has no ``bake``), canary/linear configuration, alarms and
  ``lifecycleHooks``: each ``lambda`` hook is an AWS_LAMBDA hook at its stage (``preScaleUp`` ->
  PRE_SCALE_UP, ... ``postProductionTraffic`` -> POST_PRODUCTION_TRAFFIC_SHIFT) with the strategy's
  ``hookRole`` as ``roleArn`` and ``timeout``/``onTimeout`` as ``timeoutConfiguration``; a service that
  lists a maintenance window also gets the agent's PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT (ECS holds
  every production traffic step there until the agent continues it in an open window); engine ``agent``
  -> the EXTERNAL controller;
* for EXTERNAL services the task definition, load balancers, network configuration, launch type or
  capacity-provider strategy, platform version and service registries belong to a task set: they move
  to ``request["taskSet"]`` (CreateTaskSet parameters without ``cluster``/``service``, scale 100 %).

The agent engine runs its hooks itself (nothing is sent to ECS for them).

``normalise_service`` turns either a desired request or a DescribeServices entry into the same shape:
request fields only, ECS defaults filled (``platformVersion`` LATEST on Fargate, ``schedulingStrategy``
REPLICA, ``propagateTags`` NONE, managed tags and execute command off, grace period 0, rolling 200/100
with the circuit breaker off, ``deploymentController`` ECS, a lifecycle hook's ``targetType``
AWS_LAMBDA and timeout 1440 minutes / ROLLBACK), subnets/security groups/load balancers/
registries/constraints sorted (placement strategy keeps its order: it is evaluated in order), tags as a
sorted list, and ``taskDefinition`` as ``family:revision`` (``family:(new)`` for a revision not yet
registered). For an EXTERNAL service the task-set fields are read from ``taskSet`` (desired) or from
the PRIMARY task set (observed).
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from agent.plan.model import TaskDefinitionRef
from agent.plan.taskdefs import family_revision, prune

# CreateService parameters that describe the service (``cluster`` and ``clientToken`` are not state).
REQUEST_FIELDS = (
    "serviceName",
    "taskDefinition",
    "availabilityZoneRebalancing",
    "loadBalancers",
    "serviceRegistries",
    "desiredCount",
    "launchType",
    "capacityProviderStrategy",
    "platformVersion",
    "role",
    "deploymentConfiguration",
    "placementConstraints",
    "placementStrategy",
    "networkConfiguration",
    "healthCheckGracePeriodSeconds",
    "schedulingStrategy",
    "deploymentController",
    "tags",
    "enableECSManagedTags",
    "propagateTags",
    "enableExecuteCommand",
    "serviceConnectConfiguration",
    "volumeConfigurations",
    "vpcLatticeConfigurations",
    "monitoring",
)

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

_ECS_STRATEGY = {"blueGreen": "BLUE_GREEN", "canary": "CANARY", "linear": "LINEAR", "rolling": "ROLLING"}
# Manifest hook stages -> ECS lifecycle stages.
HOOK_STAGES = {
    "preScaleUp": "PRE_SCALE_UP",
    "postScaleUp": "POST_SCALE_UP",
    "testTraffic": "TEST_TRAFFIC_SHIFT",
    "postTestTraffic": "POST_TEST_TRAFFIC_SHIFT",
    "preProductionTraffic": "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "postProductionTraffic": "POST_PRODUCTION_TRAFFIC_SHIFT",
}
# The hook the agent adds to hold production traffic outside maintenance windows; its timeout is ECS's
# longest (14 days), so a closed window never times it out before it opens again.
PAUSE_STAGE = "PRE_PRODUCTION_TRAFFIC_SHIFT"
PAUSE_TIMEOUT_MINUTES = 20160
DEFAULT_HOOK_TIMEOUT_MINUTES = 1440
WINDOW_PAUSE_HOOK: dict[str, Any] = {
    "targetType": "PAUSE",
    "lifecycleStages": [PAUSE_STAGE],
    "timeoutConfiguration": {"timeoutInMinutes": PAUSE_TIMEOUT_MINUTES, "action": "ROLLBACK"},
}
_DURATION_RE = re.compile(r"^(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?$")
_FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


def duration_seconds(value: Any) -> int:
    """``"90s"`` -> 90, ``"5m"`` -> 300, ``"1h30m"`` -> 5400 (an int is taken as seconds)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _DURATION_RE.match(str(value).strip())
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {value!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def duration_minutes(value: Any) -> int:
    """A duration in whole minutes, rounded up (ECS bake times are minutes): ``"5m"`` -> 5, ``"90s"`` -> 2."""
    return math.ceil(duration_seconds(value) / 60)


def ref(value: Any) -> Any:
    """A resolved reference as the string the API takes (tolerates ``{arn: ...}`` / ``{name: ...}``)."""
    if isinstance(value, Mapping):
        for key in ("arn", "id", "name"):
            if isinstance(value.get(key), str):
                return value[key]
    return value


def alarm_name(value: Any) -> Any:
    """DeploymentAlarms takes alarm names: the name of an alarm ARN, or the reference itself."""
    value = ref(value)
    if isinstance(value, str) and value.startswith("arn:") and ":alarm:" in value:
        return value.split(":alarm:", 1)[1]
    return value


def tags_list(tags: Any) -> list[dict[str, str]]:
    """``{k: v}`` (manifest) or ``[{key, value}]`` (API) as the API's list, sorted by key."""
    if isinstance(tags, Mapping):
        items = [{"key": str(k), "value": "" if v is None else str(v)} for k, v in tags.items()]
    elif isinstance(tags, list):
        items = [
            {"key": str(t.get("key")), "value": str(t.get("value", ""))}
            for t in tags
            if isinstance(t, Mapping) and t.get("key") is not None
        ]
    else:
        items = []
    return sorted(items, key=lambda t: t["key"])


def resolve_strategy(strategy: Any, strategies: Mapping[str, Any]) -> dict[str, Any] | None:
    """The strategy spec a Service uses: by name from ``strategies`` (Manifests or specs), inline, or None."""
    if strategy is None:
        return None
    if isinstance(strategy, Mapping):
        return dict(strategy)
    found = strategies.get(str(strategy))
    if found is None:
        raise KeyError(f"unknown DeploymentStrategy {strategy!r}")
    spec = getattr(found, "spec", found)
    return dict(spec)


def engine_of(strategy: Mapping[str, Any] | None) -> str:
    """``"rolling"``, ``"ecs"`` (native blue/green, canary, linear) or ``"agent"`` (EXTERNAL task sets)."""
    if not strategy or strategy.get("type", "rolling") == "rolling":
        return "rolling"
    return "agent" if strategy.get("engine") == "agent" else "ecs"


def lifecycle_hooks(strategy: Mapping[str, Any], pause: bool = False) -> list[dict[str, Any]]:
    """ECS ``lifecycleHooks`` for an ecs-engine strategy: its Lambda hooks, then the window PAUSE hook."""
    hooks = []
    for hook in strategy.get("hooks") or []:
        if not isinstance(hook, Mapping) or not hook.get("lambda"):
            continue  # url hooks are the agent engine's (validation refuses them on engine ecs)
        item: dict[str, Any] = {
            "targetType": "AWS_LAMBDA",
            "hookTargetArn": str(hook["lambda"]),
            "lifecycleStages": [HOOK_STAGES[str(hook["stage"])]],
        }
        if strategy.get("hookRole") is not None:
            item["roleArn"] = ref(strategy["hookRole"])
        timeout = {"action": "CONTINUE" if hook.get("onTimeout") == "continue" else "ROLLBACK"}
        if hook.get("timeout") is not None:
            timeout["timeoutInMinutes"] = max(1, duration_minutes(hook["timeout"]))
        item["timeoutConfiguration"] = timeout
        hooks.append(item)
    if pause:
        hooks.append(copy.deepcopy(WINDOW_PAUSE_HOOK))
    return hooks


def deployment_settings(
    strategy: Mapping[str, Any] | None, pause: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(deploymentController, deploymentConfiguration)`` for a strategy spec (None: the default rolling).

    ``pause``: the service lists a maintenance window, so an ecs-engine strategy gets the PAUSE hook.
    """
    engine = engine_of(strategy)
    strategy = strategy or {}
    rollback_on = strategy.get("rollbackOn") or {}
    alarms = sorted({str(alarm_name(a)) for a in rollback_on.get("alarms") or []})
    alarm_config = {"alarmNames": alarms, "enable": True, "rollback": True} if alarms else None
    if engine == "agent":
        return {"type": "EXTERNAL"}, None
    if engine == "rolling":
        rolling = strategy.get("rolling") or {}
        breaker = bool(rollback_on.get("circuitBreaker", True))
        config: dict[str, Any] = {
            "strategy": "ROLLING",
            "maximumPercent": rolling.get("maximumPercent", 200),
            "minimumHealthyPercent": rolling.get("minimumHealthyPercent", 100),
            "deploymentCircuitBreaker": {"enable": breaker, "rollback": breaker},
        }
    else:
        config = {"strategy": _ECS_STRATEGY[str(strategy["type"])]}
        config["bakeTimeInMinutes"] = duration_minutes(strategy.get("bake") or 0)
        canary = strategy.get("canary")
        if strategy["type"] == "canary" and isinstance(canary, Mapping):
            config["canaryConfiguration"] = {
                "canaryPercent": float(canary["percent"]),
                "canaryBakeTimeInMinutes": duration_minutes(canary.get("bake", 0)),
            }
        linear = strategy.get("linear")
        if strategy["type"] == "linear" and isinstance(linear, Mapping):
            config["linearConfiguration"] = {
                "stepPercent": float(linear["stepPercent"]),
                "stepBakeTimeInMinutes": duration_minutes(linear.get("stepBake", 0)),
            }
        hooks = lifecycle_hooks(strategy, pause)
        if hooks:
            config["lifecycleHooks"] = hooks
    if alarm_config:
        config["alarms"] = alarm_config
    return {"type": "ECS"}, config


def live_strategy(service: Mapping[str, Any]) -> str:
    """How a described service deploys now: ``EXTERNAL``, ``CODE_DEPLOY``, or its ECS
    ``deploymentConfiguration.strategy``."""
    controller = (service.get("deploymentController") or {}).get("type")
    if controller in ("EXTERNAL", "CODE_DEPLOY"):
        return str(controller)
    return str((service.get("deploymentConfiguration") or {}).get("strategy") or "ROLLING")


def wanted_strategy(strategy: Mapping[str, Any] | None) -> str:
    """``EXTERNAL`` for the agent engine, else the ECS strategy (ROLLING, BLUE_GREEN, CANARY, LINEAR)."""
    controller, configuration = deployment_settings(strategy)
    if controller["type"] == "EXTERNAL":
        return "EXTERNAL"
    return str((configuration or {}).get("strategy") or "ROLLING")


def switch_blocker(
    service: Mapping[str, Any] | None, strategy: Mapping[str, Any] | None
) -> tuple[str, str] | None:
    """``(state, reason)`` when Git asks to switch a service's deployment controller in a way that cannot
    be applied now: ``("failure", ...)`` from the ECS controller to EXTERNAL (the agent never does that in
    place: it would need the service re-created), ``("pending", ...)`` from EXTERNAL to ECS while the
    service has anything but exactly one task set, PRIMARY (what ECS requires to change controller; the
    agent engine winds its rollout down meanwhile: agent.rollout.progressive.hand_back).
    Switches between ECS strategies (ROLLING <-> BLUE_GREEN / LINEAR / CANARY) are UpdateService calls
    and never blocked here; a CODE_DEPLOY service is agent.plan.codedeploy's to gate."""
    if not service:
        return None
    have, want = live_strategy(service), wanted_strategy(strategy)
    if have == want or "EXTERNAL" not in (have, want) or have == "CODE_DEPLOY":
        return None
    if want == "EXTERNAL":
        return (
            "failure",
            f"switching to engine agent needs the service re-created (ECS controller -> EXTERNAL is not done "
            f"in place): delete {service.get('serviceName', 'it')} or use a new serviceName",
        )
    task_sets = [ts for ts in service.get("taskSets") or () if ts.get("status") != "DRAINING"]
    if len(task_sets) != 1 or task_sets[0].get("status") != "PRIMARY":
        return (
            "pending",
            f"switching from engine agent to {want} waits for one PRIMARY task set ({len(task_sets)} "
            "now): the agent engine first puts all traffic on the one it keeps and deletes the others",
        )
    return None


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
    for key in ("canaryConfiguration", "linearConfiguration"):
        if isinstance(config.get(key), Mapping):
            config[key] = {k: (float(v) if k.endswith("Percent") else v) for k, v in config[key].items()}
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
    service = {key: copy.deepcopy(source[key]) for key in REQUEST_FIELDS if key in source}
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
