"""Service checks: references, waves and dependsOn, capacity, strategy fit, Fargate needs, ignoreDrift.

Problems about what a Fargate service needs from its task definition are reported at the task
definition (the file, or ``/spec/taskDefinition/...`` when inline), where the user has to edit.
"""

from __future__ import annotations

import difflib
from typing import Any

from agent.manifests.checks.clusters import FARGATE_PROVIDERS, provider_known, unknown_provider
from agent.manifests.checks.context import Context, items_of, location, valid_entries
from agent.manifests.checks.strategies import (
    TEST_TRAFFIC_STAGES,
    TRAFFIC_SHIFTING,
    check_strategy,
    strategy_of,
)
from agent.manifests.fields import SERVICE_REQUEST_FIELDS, explicit_wave
from agent.manifests.model import Manifest

# What an ignoreDrift pointer may start with: the service's fields as the planner compares them.
SERVICE_FIELDS = tuple(f for f in SERVICE_REQUEST_FIELDS if f not in ("serviceName", "schedulingStrategy"))


def check_service(ctx: Context, m: Manifest) -> None:
    spec, src = m.spec, m.source
    names = ctx.names
    # strategy
    strategy_ref = spec.get("strategy")
    if isinstance(strategy_ref, str) and strategy_ref not in names["DeploymentStrategy"]:
        ctx.add(src, "/spec/strategy", f'no DeploymentStrategy named "{strategy_ref}"')
    elif isinstance(strategy_ref, dict):
        check_strategy(ctx, strategy_ref, src, "/spec/strategy")
    # windows
    for i, w in enumerate(items_of(spec.get("windows"))):
        if w not in names["Window"]:
            ctx.add(src, f"/spec/windows/{i}", f'no Window named "{w}"')
    # dependsOn
    for i, d in enumerate(items_of(spec.get("dependsOn"))):
        if d == m.name:
            ctx.add(src, f"/spec/dependsOn/{i}", "a service cannot depend on itself")
        elif d not in names["Service"]:
            ctx.add(src, f"/spec/dependsOn/{i}", f'no Service named "{d}"')
        elif explicit_wave(names["Service"][d]) > explicit_wave(m):
            ctx.add(
                src,
                f"/spec/dependsOn/{i}",
                f'"{d}" is in a later wave ({explicit_wave(names["Service"][d])}) than this service '
                f"({explicit_wave(m)}), so it cannot roll out first",
            )
    _check_ignore_drift(ctx, m)
    # capacity providers
    cluster = names["Cluster"].get(spec.get("cluster"))
    cluster_cps = cluster.spec.get("capacityProviders") if cluster else None
    cps = spec.get("capacityProviderStrategy") or []
    for i, item in enumerate(cps):
        name = item.get("capacityProvider") if isinstance(item, dict) else None
        pointer = f"/spec/capacityProviderStrategy/{i}/capacityProvider"
        if not provider_known(ctx, name):
            ctx.add(src, pointer, unknown_provider(name))
        elif isinstance(cluster_cps, list) and name not in cluster_cps and cluster is not None:
            ctx.add(
                src,
                pointer,
                f'cluster "{cluster.name}" ({location(cluster.source)}) does not list capacity provider '
                f'"{name}" in its capacityProviders; ECS would reject the service',
            )
    _check_service_strategy(ctx, m)
    _check_service_task_definition(ctx, m, cluster)


def _check_service_strategy(ctx: Context, m: Manifest) -> None:
    """Strategy/service combinations ECS (or the agent engine) cannot run."""
    spec, src = m.spec, m.source
    found = strategy_of(ctx, m)
    if found is None:
        return
    strategy, label, _ = found
    stype, engine = strategy.get("type"), strategy.get("engine", "ecs")
    if spec.get("launchType") == "EXTERNAL" and engine == "agent":
        ctx.add(
            src,
            "/spec/launchType",
            f"{label} runs on engine agent (task sets), which cannot manage launchType EXTERNAL "
            "(ECS Anywhere); use engine ecs",
        )
        return  # the agent engine cannot run this service at all: its other needs are moot
    if stype not in TRAFFIC_SHIFTING:
        return
    lbs = spec.get("loadBalancers") or []
    if not lbs:
        how = "a load balancer" if engine == "ecs" else "listener-rule weights between two target groups"
        ctx.add(
            src,
            "/spec/loadBalancers",
            f"{label} is {stype} on engine {engine}, which shifts traffic through {how}; this service has "
            "none",
        )
        return
    first = lbs[0] if isinstance(lbs[0], dict) else {}
    test_hooks = sorted(
        {
            str(h.get("stage"))
            for h in items_of(strategy.get("hooks"))
            if isinstance(h, dict) and h.get("stage") in TEST_TRAFFIC_STAGES
        }
    )
    if engine == "agent" and test_hooks and "testListenerRule" not in first:
        ctx.add(
            src,
            "/spec/loadBalancers/0/testListenerRule",
            f"{label} has {' and '.join(test_hooks)} hooks, which engine agent runs while a test listener "
            "rule sends traffic to the new revision; add testListenerRule or remove those hooks",
        )
    needed = ["alternateTargetGroup", "productionListenerRule"] + (["role"] if engine == "ecs" else [])
    for i, lb in enumerate(lbs):
        if not isinstance(lb, dict):
            continue
        missing = [f for f in needed if f not in lb]
        if missing:
            ctx.add(
                src,
                f"/spec/loadBalancers/{i}/{missing[0]}",
                f"{label} is {stype} on engine {engine}, which needs {', '.join(needed)} on every load "
                f"balancer; missing: {', '.join(missing)}",
            )


def _uses_fargate(ctx: Context, spec: dict[str, Any], cluster: Manifest | None) -> bool:
    if spec.get("launchType") == "FARGATE":
        return True
    cps = spec.get("capacityProviderStrategy")
    if cps is None and spec.get("launchType") is None and cluster is not None:
        cps = cluster.spec.get("defaultCapacityProviderStrategy")
    return any(isinstance(i, dict) and i.get("capacityProvider") in FARGATE_PROVIDERS for i in items_of(cps))


def _check_service_task_definition(ctx: Context, m: Manifest, cluster: Manifest | None) -> None:
    td = ctx.service_td.get(m.name)
    if td is None:
        return
    spec, src = m.spec, m.source
    body = td.body
    where = "its task definition" if td.source == src else f"task definition {td.source.file}"
    if body.get("networkMode") == "awsvpc" and "networkConfiguration" not in spec:
        ctx.add(
            src,
            "/spec/networkConfiguration",
            f"{where} uses networkMode awsvpc, so ECS requires networkConfiguration.awsvpcConfiguration "
            "(subnets, securityGroups)",
        )
    if not _uses_fargate(ctx, spec, cluster):
        return
    who = f'service "{m.name}" ({src.file}) runs on Fargate'
    for key in ("cpu", "memory"):
        if body.get(key) in (None, ""):
            ctx.add(td.source, f"{td.pointer}/{key}", f"task-level {key} is required: {who}")
    compat = body.get("requiresCompatibilities")
    if not isinstance(compat, list) or "FARGATE" not in compat:
        ctx.add(
            td.source,
            f"{td.pointer}/requiresCompatibilities",
            f"must include FARGATE: {who}",
        )
    if body.get("networkMode") != "awsvpc":
        ctx.add(
            td.source,
            f"{td.pointer}/networkMode",
            f"must be awsvpc (not {body.get('networkMode') or 'unset'}): {who}",
        )


def _check_ignore_drift(ctx: Context, m: Manifest) -> None:
    """ignoreDrift pointers must start at a field of the service as the plan shows it (CreateService)."""
    for i, pointer in enumerate(items_of(m.spec.get("ignoreDrift"))):
        if not isinstance(pointer, str) or not pointer.startswith("/"):
            continue  # the schema reports it
        top = pointer.split("/")[1].replace("~1", "/").replace("~0", "~")
        if top in SERVICE_FIELDS:
            continue
        close = difflib.get_close_matches(top, SERVICE_FIELDS, n=1)
        hint = f' (did you mean "/{close[0]}"?)' if close else ""
        ctx.add(
            m.source,
            f"/spec/ignoreDrift/{i}",
            f'"{pointer}" does not point into a service field{hint}: paths are those of the plan, '
            "e.g. /desiredCount, /tags/owner, /networkConfiguration/awsvpcConfiguration/securityGroups",
        )


def check_cycles(ctx: Context) -> None:
    """dependsOn must be acyclic; each cycle is reported once, at its alphabetically first service."""
    graph: dict[str, list[str]] = {}
    for e in valid_entries(ctx, "Service"):
        deps = e.manifest.spec.get("dependsOn") or []
        graph[e.manifest.name] = [d for d in deps if isinstance(d, str) and d != e.manifest.name]
    reported: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :]
                start = cycle.index(min(cycle))
                canon = tuple(cycle[start:] + cycle[:start])
                if canon not in reported:
                    reported.add(canon)
                    first = ctx.names["Service"][canon[0]]
                    target = canon[1] if len(canon) > 1 else canon[0]
                    deps = first.spec.get("dependsOn") or []
                    index = deps.index(target) if target in deps else 0
                    ctx.add(
                        first.source,
                        f"/spec/dependsOn/{index}",
                        "dependsOn forms a cycle: " + " -> ".join([*canon, canon[0]]),
                    )
            elif state.get(nxt) is None:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
