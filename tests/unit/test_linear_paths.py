"""No per-tick path is quadratic in the number of services: the work each function does, counted (never
timed), grows linearly from 1,000 to 10,000 synthetic services.

Work is counted with ``sys.setprofile``: every Python call and every builtin call (``dict.get`` inside a
loop, say) is charged to the function it happens in. A path that scans every service once per service does
100 times the work at 10 times the services; a linear one about 10 times.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from agent.daemon import strategy_types
from agent.engines.rolling import RollingEngine
from agent.manifests.model import Desired, Manifest, Source, TaskDefinitionFile
from agent.plan.observed import Observed
from agent.plan.planning import build_plan
from agent.plan.taskdefs import content_hash
from agent.reconcile.deciding import decide
from agent.reconcile.results import PlanResult

ACCOUNT = "arn:aws:ecs:eu-west-1:123456789012"
NOW = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)


def _body(family: str, image: str) -> dict[str, Any]:
    return {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [{"name": "app", "image": image, "portMappings": [{"containerPort": 80}]}],
    }


def _commit(n: int) -> tuple[Desired, Observed]:
    """``n`` services, each with its family; the even ones run what Git asks, the odd ones get a new image;
    the last tenth does not exist yet."""
    desired, observed = Desired(), Observed()
    steady = Manifest("DeploymentStrategy", "steady", {"type": "rolling"}, Source("strategies/steady.yaml"))
    desired.strategies["steady"] = steady
    for i in range(n):
        name = f"svc-{i:05d}"
        body = _body(name, f"repo/{name}:{'v2' if i % 2 else 'v1'}")
        desired.task_definitions[name] = TaskDefinitionFile(body, Source(f"taskdefs/{name}.json"))
        desired.service_task_family[name] = name
        spec = {"cluster": "prod", "desiredCount": 2, "launchType": "FARGATE", "strategy": "steady"}
        spec["networkConfiguration"] = {"awsvpcConfiguration": {"subnets": ["subnet-1"]}}
        desired.services[name] = Manifest("Service", name, spec, Source(f"services/{name}.yaml"))
        if i >= n - n // 10:
            observed.services[("prod", name)] = None
            continue
        arn = f"{ACCOUNT}:task-definition/{name}:1"
        live = _body(name, f"repo/{name}:v1")
        tags = [{"key": "ecs-gitops:content-hash", "value": content_hash(live)}]
        observed.task_definitions[arn] = {"taskDefinition": {**live, "taskDefinitionArn": arn}, "tags": tags}
        observed.revisions_by_hash[(name, content_hash(live))] = arn
        observed.services[("prod", name)] = {
            "serviceName": name,
            "status": "ACTIVE",
            "taskDefinition": arn,
            "desiredCount": 2,
            "runningCount": 2,
            "launchType": "FARGATE",
            "deployments": [{"status": "PRIMARY", "taskDefinition": arn, "rolloutState": "COMPLETED"}],
        }
    return desired, observed


def _work(run: Callable[[], Any]) -> Counter[str]:
    """Calls made inside each agent function while ``run()`` runs, by ``module:function``."""
    work: Counter[str] = Counter()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            code = frame.f_code
            if "/agent/" in code.co_filename:
                work[f"{frame.f_globals.get('__name__')}:{code.co_name}"] += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return work


def _superlinear(small: Counter[str], large: Counter[str], factor: int) -> dict[str, tuple[int, int]]:
    """Functions whose work grew by more than ``factor`` (plus slack for constant work)."""
    return {
        name: (small.get(name, 0), count)
        for name, count in large.items()
        if count > factor * 1.5 * small.get(name, 0) + 100
    }


def _plan_and_views(n: int) -> Counter[str]:
    desired, observed = _commit(n)

    def run() -> None:
        plan = build_plan(desired, observed, revision="a" * 40)
        result = PlanResult(plan, desired, observed)
        decide(result, [RollingEngine()], None, "a" * 40, NOW)  # type: ignore[arg-type]
        strategy_types(result)

    return _work(run)


def test_planning_deciding_and_views_grow_linearly_to_ten_thousand_services() -> None:
    """build_plan, the engines' decisions and the metrics' strategy labels do at 10,000 services at most
    about ten times the work they do at 1,000, function by function."""
    small, large = _plan_and_views(1_000), _plan_and_views(10_000)
    assert sum(large.values()) > 5 * sum(small.values())  # the counting saw the work
    assert _superlinear(small, large, 10) == {}
