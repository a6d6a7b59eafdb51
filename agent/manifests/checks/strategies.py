"""DeploymentStrategy rules ECS (or the agent engine) would reject, for named and inline strategies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agent.manifests.checks.context import Context, items_of
from agent.manifests.checks.durations import check_duration
from agent.manifests.model import Manifest, Source

ECS_MAX_BAKE = timedelta(minutes=1440)
ECS_MAX_HOOK_TIMEOUT = timedelta(minutes=20160)  # DeploymentLifecycleHookTimeoutConfiguration
TRAFFIC_SHIFTING = ("blueGreen", "canary", "linear")
TEST_TRAFFIC_STAGES = ("testTraffic", "postTestTraffic")


def strategy_of(ctx: Context, service: Manifest) -> tuple[dict[str, Any], str, Source] | None:
    """(strategy spec, its name for messages, where it is) for a service; the default is rolling."""
    ref = service.spec.get("strategy")
    if isinstance(ref, dict):
        return ref, "inline strategy", service.source
    if isinstance(ref, str):
        target = ctx.names["DeploymentStrategy"].get(ref)
        if target is None:
            return None
        return target.spec, f'strategy "{ref}"', target.source
    return {"type": "rolling", "engine": "ecs"}, "default rolling strategy", service.source


def check_strategy(ctx: Context, spec: dict[str, Any], source: Source, base: str) -> None:
    """Strategy rules ECS (or the agent) would reject, at ``base`` (``/spec`` or ``/spec/strategy``)."""
    stype = spec.get("type")
    engine = spec.get("engine", "ecs")
    if stype == "rolling" and engine == "agent":
        ctx.add(
            source, f"{base}/engine", "a rolling strategy always runs on engine ecs; remove engine: agent"
        )
    rollback = spec.get("rollbackOn") or {}
    if rollback.get("circuitBreaker") and stype != "rolling":
        ctx.add(
            source,
            f"{base}/rollbackOn/circuitBreaker",
            f"the ECS deployment circuit breaker only works with type rolling, not {stype}; use alarms",
        )
    stages: set[Any] = set()
    for i, hook in enumerate(items_of(spec.get("hooks"))):
        hp = f"{base}/hooks/{i}"
        if stype == "rolling" and isinstance(hook, dict):
            ctx.add(
                source,
                f"{hp}/stage",
                "a rolling strategy runs no lifecycle hooks; use type blueGreen, linear or canary",
            )
            continue
        stage = hook.get("stage") if isinstance(hook, dict) else None
        if engine == "agent" and stage is not None:
            if stage in stages:
                ctx.add(
                    source,
                    f"{hp}/stage",
                    f"a second {stage} hook; engine agent runs one hook per stage (combine them in one "
                    "endpoint or function)",
                )
            stages.add(stage)
        if isinstance(hook, dict) and "url" in hook and engine == "ecs":
            ctx.add(
                source,
                f"{hp}/url",
                "url hooks need engine: agent; native ECS lifecycle hooks can only invoke Lambda functions",
            )
        if isinstance(hook, dict) and "lambda" in hook and engine == "ecs" and spec.get("hookRole") is None:
            ctx.add(
                source,
                f"{hp}/lambda",
                "lambda hooks on engine ecs need hookRole: the IAM role ECS assumes to invoke the function "
                f"(set {base}/hookRole)",
            )
        if isinstance(hook, dict) and "timeout" in hook:
            d = check_duration(ctx, source, f"{hp}/timeout", hook["timeout"], nonzero=True)
            if d is not None and engine == "ecs" and d > ECS_MAX_HOOK_TIMEOUT:
                ctx.add(
                    source,
                    f"{hp}/timeout",
                    f"{hook['timeout']} is longer than ECS allows a lifecycle hook to wait: 20160 minutes "
                    "(14 days) on engine ecs",
                )
    if engine == "ecs":
        for key, field_name in (("canary", "percent"), ("linear", "stepPercent")):
            value = (spec.get(key) or {}).get(field_name) if isinstance(spec.get(key), dict) else None
            if isinstance(value, int | float) and abs(value * 10 - round(value * 10)) > 1e-6:
                ctx.add(
                    source,
                    f"{base}/{key}/{field_name}",
                    f"{value} is not a multiple of 0.1; ECS takes {key} percentages in tenths on engine ecs",
                )
    bakes = [("/bake", spec.get("bake"))]
    if isinstance(spec.get("canary"), dict):
        bakes.append(("/canary/bake", spec["canary"].get("bake")))
    if isinstance(spec.get("linear"), dict):
        bakes.append(("/linear/stepBake", spec["linear"].get("stepBake")))
    for sub, value in bakes:
        if value is None:
            continue
        d = check_duration(ctx, source, base + sub, value)
        if d is not None and engine == "ecs" and d > ECS_MAX_BAKE:
            ctx.add(
                source,
                base + sub,
                f"{value} is {int(d.total_seconds() // 60)} minutes; ECS allows at most 1440 minutes (24h) "
                "on engine ecs",
            )
