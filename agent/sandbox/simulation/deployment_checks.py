"""The ECS checks on a CreateService / UpdateService deployment configuration and controller change.

CreateService and UpdateService are checked like ECS checks them (:func:`check_deployment_request`):
the circuit breaker only with ROLLING, step and canary percentages in range and multiples of 0.1, bake
times 0-1440 minutes, lifecycle hooks well formed (a PAUSE hook neither at TEST_TRAFFIC_SHIFT nor at
PRODUCTION_TRAFFIC_SHIFT; a Lambda hook with its ARN and ``roleArn``), and load balancers with their
``advancedConfiguration`` for the traffic-shifting strategies.

A change of deployment controller is modelled from EXTERNAL or CODE_DEPLOY to ECS only, with the one
PRIMARY task set ECS documents (:func:`check_controller_switch`).
"""

from __future__ import annotations

from collections.abc import Callable

from agent.sandbox.overlay.calls import EcsError
from agent.sandbox.simulation.deployment_records import (
    AWS_LAMBDA,
    HOOK_STAGES,
    MAX_BAKE_MINUTES,
    MAX_HOOK_TIMEOUT_MINUTES,
    NATIVE_STRATEGIES,
    NO_PAUSE_STAGES,
    PAUSE,
)
from agent.sandbox.simulation.model import Json, SimService


def _tenths(value: float) -> bool:
    return abs(value * 10 - round(value * 10)) < 1e-6


def check_deployment_request(params: Json, stored: Json | None = None) -> None:
    """Reject a CreateService/UpdateService ``deploymentConfiguration`` ECS would reject.

    ``stored`` is what the service already has (UpdateService may send only part of it).
    """
    stored = stored or {}
    config = params.get("deploymentConfiguration")
    if config is None:
        config = stored.get("deploymentConfiguration") or {}
    strategy = config.get("strategy") or "ROLLING"

    def bad(message: str) -> EcsError:
        return EcsError("InvalidParameterException", message)

    breaker = config.get("deploymentCircuitBreaker") or {}
    if strategy != "ROLLING" and breaker.get("enable"):
        raise bad("The deployment circuit breaker can only be used with the ROLLING deployment strategy.")
    if strategy != "LINEAR" and config.get("linearConfiguration") is not None:
        raise bad("linearConfiguration is only valid with the LINEAR deployment strategy.")
    if strategy != "CANARY" and config.get("canaryConfiguration") is not None:
        raise bad("canaryConfiguration is only valid with the CANARY deployment strategy.")
    if strategy == "BLUE_GREEN" and config.get("bakeTimeInMinutes") is None:
        raise bad("bakeTimeInMinutes is required with the BLUE_GREEN deployment strategy.")
    bakes = [("bakeTimeInMinutes", config.get("bakeTimeInMinutes"))]
    linear = config.get("linearConfiguration") or {}
    canary = config.get("canaryConfiguration") or {}
    bakes += [("stepBakeTimeInMinutes", linear.get("stepBakeTimeInMinutes"))]
    bakes += [("canaryBakeTimeInMinutes", canary.get("canaryBakeTimeInMinutes"))]
    for name, value in bakes:
        if value is not None and not 0 <= int(value) <= MAX_BAKE_MINUTES:
            raise bad(f"{name} must be between 0 and {MAX_BAKE_MINUTES} minutes.")
    step = linear.get("stepPercent")
    if step is not None and not (3.0 <= float(step) <= 100.0 and _tenths(float(step))):
        raise bad("stepPercent must be a multiple of 0.1 between 3.0 and 100.0.")
    percent = canary.get("canaryPercent")
    if percent is not None and not (0.1 <= float(percent) <= 100.0 and _tenths(float(percent))):
        raise bad("canaryPercent must be a multiple of 0.1 between 0.1 and 100.0.")
    for hook in config.get("lifecycleHooks") or []:
        _check_hook(hook, bad)
    if strategy in NATIVE_STRATEGIES:
        balancers = params.get("loadBalancers")
        if balancers is None:
            balancers = stored.get("loadBalancers") or []
        connect = params.get("serviceConnectConfiguration") or stored.get("serviceConnectConfiguration")
        if not balancers and not connect:
            raise bad(f"The {strategy} deployment strategy needs a load balancer or Service Connect.")
        for lb in balancers:
            advanced = lb.get("advancedConfiguration") or {}
            missing = [
                k
                for k in ("alternateTargetGroupArn", "productionListenerRule", "roleArn")
                if not advanced.get(k)
            ]
            if missing:
                raise bad(
                    f"The {strategy} deployment strategy needs loadBalancers[].advancedConfiguration with "
                    f"{', '.join(missing)}."
                )


def _check_hook(hook: Json, bad: Callable[[str], EcsError]) -> None:
    target = hook.get("targetType") or AWS_LAMBDA
    stages = hook.get("lifecycleStages") or []
    if not stages:
        raise bad("lifecycleStages is required for a deployment lifecycle hook.")
    for stage in stages:
        if stage not in HOOK_STAGES:
            raise bad(f"{stage} is not a lifecycle stage a hook can run at.")
        if target == PAUSE and stage in NO_PAUSE_STAGES:
            raise bad(f"PAUSE hooks cannot be configured at the {stage} stage.")
    if target == AWS_LAMBDA and not hook.get("hookTargetArn"):
        raise bad("hookTargetArn is required for an AWS_LAMBDA lifecycle hook.")
    if target == AWS_LAMBDA and not hook.get("roleArn"):
        raise bad("roleArn is required for an AWS_LAMBDA lifecycle hook.")
    if target == PAUSE and hook.get("hookTargetArn"):
        raise bad("hookTargetArn is not applicable to a PAUSE lifecycle hook.")
    timeout = (hook.get("timeoutConfiguration") or {}).get("timeoutInMinutes")
    if timeout is not None and not 1 <= int(timeout) <= MAX_HOOK_TIMEOUT_MINUTES:
        raise bad(f"timeoutInMinutes must be between 1 and {MAX_HOOK_TIMEOUT_MINUTES}.")


def check_controller_switch(stored: Json, wanted: Json, services: dict[str, SimService]) -> None:
    """EXTERNAL or CODE_DEPLOY -> ECS needs exactly one task set, PRIMARY (as ECS documents); ECS ->
    EXTERNAL in place is not modelled (the agent never asks for it)."""
    have = (stored.get("deploymentController") or {}).get("type", "ECS")
    want = (wanted or {}).get("type", "ECS")
    if have == want:
        return
    if want != "ECS" or have not in ("EXTERNAL", "CODE_DEPLOY"):
        raise EcsError(
            "InvalidParameterException",
            f"The sandbox models a deployment controller change from EXTERNAL or CODE_DEPLOY to ECS "
            f"only, not {have} to {want}; create a new service instead.",
        )
    sim = services.get(stored.get("serviceArn", ""))
    task_sets = [ts for ts in (sim.task_sets if sim else []) if ts.status != "DRAINING"]
    if len(task_sets) > 1:
        raise EcsError(
            "InvalidParameterException",
            "Updating the deployment controller is not supported when there are multiple tasksets in the "
            "service. Please ensure your service has only one taskset and try again.",
        )
    if not task_sets or task_sets[0].status != "PRIMARY":
        raise EcsError(
            "InvalidParameterException",
            "Updating the deployment controller requires a primary taskset in the service. Please ensure "
            "your service has a primary taskset and try again.",
        )
