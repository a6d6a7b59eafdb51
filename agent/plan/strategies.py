"""Deployment strategies: which engine a Service uses, and what its strategy asks of ECS.

``resolve_strategy`` finds the ``DeploymentStrategy`` a Service names (or its inline one), ``engine_of``
says which engine runs it, and ``deployment_settings`` maps it onto CreateService's
``deploymentController`` + ``deploymentConfiguration``: ``rolling`` (and no strategy) -> ECS controller,
``strategy: ROLLING``, percents, circuit breaker (default on, with rollback) and alarms; engine ``ecs``
-> ECS controller with ``strategy`` BLUE_GREEN / CANARY / LINEAR, ``bakeTimeInMinutes`` (0 when the
strategy has no ``bake``), canary/linear configuration, alarms and ``lifecycleHooks``: each ``lambda``
hook is an AWS_LAMBDA hook at its stage (``preScaleUp`` -> PRE_SCALE_UP, ... ``postProductionTraffic``
-> POST_PRODUCTION_TRAFFIC_SHIFT) with the strategy's ``hookRole`` as ``roleArn`` and
``timeout``/``onTimeout`` as ``timeoutConfiguration``; a service that lists a maintenance window also
gets the agent's PAUSE hook at PRE_PRODUCTION_TRAFFIC_SHIFT (ECS holds every production traffic step
there until the agent continues it in an open window); engine ``agent`` -> the EXTERNAL controller.
The agent engine runs its hooks itself (nothing is sent to ECS for them).

``live_strategy``, ``wanted_strategy`` and ``switch_blocker`` compare how a service deploys now with
what Git asks, and say when a switch between them cannot be applied yet.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from agent.plan.values import alarm_name, duration_minutes, ref

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
# What ECS uses for a canary or linear deployment that leaves a value out. CanaryConfiguration:
# canaryPercent "The default value is 5.0.", canaryBakeTimeInMinutes "The default value is 10.";
# LinearConfiguration: stepPercent "The default value is 10.0.", stepBakeTimeInMinutes "The default
# value is 6."
STEP_DEFAULTS: dict[str, dict[str, Any]] = {
    "canaryConfiguration": {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 10},
    "linearConfiguration": {"stepPercent": 10.0, "stepBakeTimeInMinutes": 6},
}
WINDOW_PAUSE_HOOK: dict[str, Any] = {
    "targetType": "PAUSE",
    "lifecycleStages": [PAUSE_STAGE],
    "timeoutConfiguration": {"timeoutInMinutes": PAUSE_TIMEOUT_MINUTES, "action": "ROLLBACK"},
}


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
