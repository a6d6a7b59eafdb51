"""The sandbox simulator: deployments, rollbacks and task sets move forward with the sandbox clock.

Every test drives a manual clock (``sim_sandbox``: 2 s per task start) and never sleeps. Every ECS
reply the ``ecs`` client receives is checked, raw, against botocore's output shape before it is parsed.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.sandbox.cli import add_sandbox_parser, sandbox_up
from agent.sandbox.overlay import shape_errors
from agent.sandbox.server import Sandbox
from agent.sandbox.simulator import (
    CIRCUIT_BREAKER_REASON,
    SandboxClock,
    failure_threshold,
)

T = 2.0  # sim_sandbox's task_start_seconds
SEED_FILE = Path(__file__).resolve().parents[2] / "manifests-example" / "sandbox-seed.yaml"


# -- helpers ---------------------------------------------------------------------------------------


def checked_client(sandbox: Sandbox) -> Any:
    """An ECS client whose every successful reply must fit botocore's output shape exactly."""
    client = sandbox.client("ecs")
    client.meta.events.register("before-parse.ecs.*", _before_parse)
    return client


def _before_parse(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
    if response_dict.get("status_code") == 200 and response_dict.get("body"):
        problems = shape_errors(json.loads(response_dict["body"]), operation_model.output_shape.name)
        assert not problems, f"{operation_model.name} reply does not fit botocore's shape:\n" + "\n".join(
            problems
        )


@pytest.fixture
def ecs(sim_sandbox: Sandbox) -> Any:
    """A shape-checked ECS client on ``sim_sandbox``, with the simulator's default settings."""
    sim_sandbox.simulator.configure(failure_pattern="*:broken*", task_start_seconds=T)
    return checked_client(sim_sandbox)


def _advance(sandbox: Sandbox, seconds: float) -> None:
    sandbox.simulator.clock.advance(seconds)


def _network(sandbox: Sandbox) -> dict[str, Any]:
    ec2 = sandbox.client("ec2")
    subnets = [
        s["SubnetId"]
        for s in ec2.describe_subnets()["Subnets"]
        if any(t["Key"] == "Name" and t["Value"].startswith("private-") for t in s.get("Tags", []))
    ]
    groups = [
        g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] == "web"
    ]
    return {
        "awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups, "assignPublicIp": "DISABLED"}
    }


def _fargate_taskdef(ecs: Any, family: str, image: str) -> str:
    """A Fargate task definition as users write them: memory only at task level, awsvpc."""
    return ecs.register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "app", "image": image, "portMappings": [{"containerPort": 8080}]}],
    )["taskDefinition"]["taskDefinitionArn"]


def _service(ecs: Any, cluster: str, name: str) -> dict[str, Any]:
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def _rolling_service(
    sandbox: Sandbox, ecs: Any, cluster: str, desired: int, *, breaker: dict[str, bool] | None = None
) -> str:
    """A cluster with one Fargate service ``web`` on ``<cluster>:1`` (nginx:1); returns that ARN."""
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE"])
    arn = _fargate_taskdef(ecs, cluster, "nginx:1")
    config: dict[str, Any] = {"maximumPercent": 200, "minimumHealthyPercent": 100}
    if breaker is not None:
        config["deploymentCircuitBreaker"] = breaker
    ecs.create_service(
        cluster=cluster,
        serviceName="web",
        taskDefinition=arn,
        desiredCount=desired,
        launchType="FARGATE",
        networkConfiguration=_network(sandbox),
        deploymentConfiguration=config,
    )
    return arn


def _summary(service: dict[str, Any]) -> list[tuple[str, str, str, int, int]]:
    return [
        (
            d["status"],
            d["taskDefinition"].rsplit("/", 1)[-1],
            d["rolloutState"],
            d["runningCount"],
            d["failedTasks"],
        )
        for d in service["deployments"]
    ]


# -- clock -----------------------------------------------------------------------------------------


def test_real_clock_runs_at_its_speed_and_can_jump() -> None:
    """A real clock follows its time source scaled by speed, keeps continuity when the speed changes,
    and moves forward at once when advanced."""
    now = [1000.0]
    clock = SandboxClock(speed=10, start=datetime(2026, 1, 1, tzinfo=UTC), source=lambda: now[0])
    start = clock.timestamp()
    now[0] += 3
    assert clock.timestamp() == start + 30
    clock.speed = 1
    now[0] += 3
    assert clock.timestamp() == start + 33
    clock.advance(100)
    assert clock.timestamp() == start + 133
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_manual_clock_moves_only_when_advanced() -> None:
    """A manual clock ignores real time and reports UTC datetimes."""
    clock = SandboxClock(manual=True, start=datetime(2026, 3, 29, 0, 59, tzinfo=UTC))
    assert clock.now() == clock.now() == datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    clock.advance(120)
    assert clock.now() == datetime(2026, 3, 29, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("desired", "threshold"), [(0, 3), (1, 3), (6, 3), (7, 4), (10, 5), (399, 200), (1000, 200)]
)
def test_circuit_breaker_threshold_is_ecs_formula(desired: int, threshold: int) -> None:
    """The failure threshold is half the desired count, clamped to 3..200, as ECS documents."""
    assert failure_threshold(desired) == threshold


def test_sandbox_up_passes_simulator_options() -> None:
    """`sandbox up --task-seconds --failure-pattern` configures the simulator it serves (runs before
    this module's shared sandbox starts: one sandbox per process)."""
    args = argparse.ArgumentParser()
    add_sandbox_parser(args.add_subparsers())
    parsed = args.parse_args(
        ["sandbox", "up", "--no-seed", "--task-seconds", "0.5", "--failure-pattern", "*:bad"]
    )
    assert (parsed.task_seconds, parsed.failure_pattern) == (0.5, "*:bad")

    lines: queue.Queue[str] = queue.Queue()

    class Out:
        def write(self, text: str) -> None:
            for line in text.splitlines():
                lines.put(line)

        def flush(self) -> None:
            pass

    stop = threading.Event()
    runner = threading.Thread(
        target=sandbox_up,
        kwargs={
            "port": 0,
            "out": Out(),
            "use_seed": False,
            "stop": stop,
            "task_seconds": 0.5,
            "failure_pattern": "*:bad",
        },
    )
    runner.start()
    try:
        endpoint = lines.get(timeout=30).split("=", 1)[1]
        with urllib.request.urlopen(endpoint + "/_sandbox/state", timeout=10) as response:
            state = json.loads(response.read())
        assert (state["taskStartSeconds"], state["failurePattern"], state["manual"]) == (0.5, "*:bad", False)
    finally:
        stop.set()
        runner.join(timeout=30)


# -- rolling deployments ---------------------------------------------------------------------------


def test_created_service_completes_once_its_tasks_run(sim_sandbox: Sandbox, ecs: Any) -> None:
    """A new service's PRIMARY deployment starts one task per tick and is COMPLETED when all run."""
    arn = _rolling_service(sim_sandbox, ecs, "sim-create", 3)
    service = _service(ecs, "sim-create", "web")
    (deployment,) = service["deployments"]
    assert deployment["id"].startswith("ecs-svc/") and deployment["id"][8:].isdigit()
    assert (deployment["status"], deployment["rolloutState"]) == ("PRIMARY", "IN_PROGRESS")
    assert (deployment["desiredCount"], deployment["pendingCount"], deployment["runningCount"]) == (3, 3, 0)
    assert deployment["launchType"] == "FARGATE" and deployment["platformVersion"] == "LATEST"
    assert deployment["networkConfiguration"] == _network(sim_sandbox)
    assert deployment["rolloutStateReason"] == f"ECS deployment {deployment['id']} in progress."

    _advance(sim_sandbox, T)
    service = _service(ecs, "sim-create", "web")
    assert (service["runningCount"], service["pendingCount"]) == (1, 2)
    assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS"

    _advance(sim_sandbox, 2 * T)
    service = _service(ecs, "sim-create", "web")
    (deployment,) = service["deployments"]
    assert (deployment["rolloutState"], deployment["runningCount"], deployment["pendingCount"]) == (
        "COMPLETED",
        3,
        0,
    )
    assert deployment["rolloutStateReason"] == f"ECS deployment {deployment['id']} completed."
    assert (service["runningCount"], service["pendingCount"], service["taskDefinition"]) == (3, 0, arn)
    assert service["events"][0]["message"] == "(service web) has reached a steady state."
    assert service["events"][0]["createdAt"] >= service["events"][-1]["createdAt"]


def test_image_update_replaces_the_old_deployment(sim_sandbox: Sandbox, ecs: Any) -> None:
    """A new task definition makes a new PRIMARY deployment; the old one turns ACTIVE, drains as new
    tasks start, and is gone when the new one is COMPLETED."""
    _rolling_service(sim_sandbox, ecs, "sim-update", 2)
    _advance(sim_sandbox, 2 * T)
    first = _service(ecs, "sim-update", "web")["deployments"][0]
    new = _fargate_taskdef(ecs, "sim-update", "nginx:2")

    updated = ecs.update_service(cluster="sim-update", service="web", taskDefinition="sim-update:2")[
        "service"
    ]
    assert _summary(updated) == [
        ("PRIMARY", "sim-update:2", "IN_PROGRESS", 0, 0),
        ("ACTIVE", "sim-update:1", "COMPLETED", 2, 0),
    ]
    assert updated["deployments"][1]["id"] == first["id"]
    assert updated["taskDefinition"] == new

    _advance(sim_sandbox, T)
    assert _summary(_service(ecs, "sim-update", "web")) == [
        ("PRIMARY", "sim-update:2", "IN_PROGRESS", 1, 0),
        ("ACTIVE", "sim-update:1", "COMPLETED", 1, 0),
    ]
    _advance(sim_sandbox, T)
    service = _service(ecs, "sim-update", "web")
    assert _summary(service) == [("PRIMARY", "sim-update:2", "COMPLETED", 2, 0)]
    assert service["runningCount"] == 2


def test_service_tasks_follow_the_running_counts(sim_sandbox: Sandbox, ecs: Any) -> None:
    """ListTasks and DescribeTasks of a service show one RUNNING task per running count of each
    deployment, of that deployment's revision, with ARNs that hold while the count does."""

    def tasks(**extra: Any) -> list[tuple[str, str, str]]:
        arns = ecs.list_tasks(cluster="sim-tasks", serviceName="web", **extra)["taskArns"]
        if not arns:
            return []
        found = ecs.describe_tasks(cluster="sim-tasks", tasks=arns)["tasks"]
        return sorted(
            (t["taskArn"], t["taskDefinitionArn"].rsplit("/", 1)[-1], t["lastStatus"]) for t in found
        )

    _rolling_service(sim_sandbox, ecs, "sim-tasks", 2)
    assert tasks() == []
    _advance(sim_sandbox, 2 * T)
    old = tasks()
    assert [(td, status) for _, td, status in old] == [("sim-tasks:1", "RUNNING")] * 2
    assert tasks() == old

    _fargate_taskdef(ecs, "sim-tasks", "nginx:2")
    ecs.update_service(cluster="sim-tasks", service="web", taskDefinition="sim-tasks:2")
    _advance(sim_sandbox, T)
    assert sorted(td for _, td, _ in tasks()) == ["sim-tasks:1", "sim-tasks:2"]
    _advance(sim_sandbox, T)
    new = tasks()
    assert [td for _, td, _ in new] == ["sim-tasks:2"] * 2 and not {a for a, _, _ in new} & {
        a for a, _, _ in old
    }

    page = ecs.list_tasks(cluster="sim-tasks", serviceName="web", maxResults=1)
    rest = ecs.list_tasks(cluster="sim-tasks", serviceName="web", nextToken=page["nextToken"])
    assert sorted(page["taskArns"] + rest["taskArns"]) == [a for a, _, _ in new] and "nextToken" not in rest
    assert tasks(desiredStatus="STOPPED") == []
    by_id = ecs.describe_tasks(cluster="sim-tasks", tasks=[new[0][0].rsplit("/", 1)[-1]])["tasks"]
    assert [(t["taskArn"], t["group"]) for t in by_id] == [(new[0][0], "service:web")]


def test_force_new_deployment_starts_a_deployment_of_the_same_revision(
    sim_sandbox: Sandbox, ecs: Any
) -> None:
    """forceNewDeployment replaces the tasks even though the task definition is unchanged."""
    _rolling_service(sim_sandbox, ecs, "sim-force", 1)
    _advance(sim_sandbox, T)
    updated = ecs.update_service(cluster="sim-force", service="web", forceNewDeployment=True)["service"]
    assert _summary(updated) == [
        ("PRIMARY", "sim-force:1", "IN_PROGRESS", 0, 0),
        ("ACTIVE", "sim-force:1", "COMPLETED", 1, 0),
    ]


def test_desired_count_only_update_keeps_the_deployment(sim_sandbox: Sandbox, ecs: Any) -> None:
    """Scaling changes the PRIMARY deployment's counts, not its identity."""
    _rolling_service(sim_sandbox, ecs, "sim-scale", 1)
    _advance(sim_sandbox, T)
    before = _service(ecs, "sim-scale", "web")["deployments"][0]

    updated = ecs.update_service(cluster="sim-scale", service="web", desiredCount=3)["service"]
    (deployment,) = updated["deployments"]
    assert deployment["id"] == before["id"]
    assert (deployment["desiredCount"], deployment["runningCount"], deployment["pendingCount"]) == (3, 1, 2)
    _advance(sim_sandbox, 2 * T)
    (deployment,) = _service(ecs, "sim-scale", "web")["deployments"]
    assert (deployment["id"], deployment["runningCount"], deployment["rolloutState"]) == (
        before["id"],
        3,
        "COMPLETED",
    )
    ecs.update_service(cluster="sim-scale", service="web", desiredCount=1)
    _advance(sim_sandbox, T)
    assert _service(ecs, "sim-scale", "web")["runningCount"] == 1


def test_broken_image_with_circuit_breaker_rolls_back(sim_sandbox: Sandbox, ecs: Any) -> None:
    """A broken image fails its tasks; at the threshold the deployment is FAILED and a new PRIMARY
    deployment of the previous task definition replaces it, as the rolling engine expects to read."""
    old = _rolling_service(sim_sandbox, ecs, "sim-broken", 2, breaker={"enable": True, "rollback": True})
    _advance(sim_sandbox, 2 * T)
    completed = _service(ecs, "sim-broken", "web")["deployments"][0]
    _fargate_taskdef(ecs, "sim-broken", "nginx:broken-1")
    ecs.update_service(cluster="sim-broken", service="web", taskDefinition="sim-broken:2")

    _advance(sim_sandbox, (failure_threshold(2) - 1) * T)
    assert _summary(_service(ecs, "sim-broken", "web")) == [
        ("PRIMARY", "sim-broken:2", "IN_PROGRESS", 0, 2),
        ("ACTIVE", "sim-broken:1", "COMPLETED", 2, 0),
    ]
    _advance(sim_sandbox, T)
    service = _service(ecs, "sim-broken", "web")
    assert _summary(service) == [
        ("PRIMARY", "sim-broken:1", "IN_PROGRESS", 0, 0),
        ("ACTIVE", "sim-broken:2", "FAILED", 0, 3),
        ("ACTIVE", "sim-broken:1", "COMPLETED", 2, 0),
    ]
    assert service["deployments"][1]["rolloutStateReason"] == CIRCUIT_BREAKER_REASON
    assert service["taskDefinition"] == old
    messages = [e["message"] for e in service["events"]]
    assert messages[0] == f"(service web) rolling back to deployment {completed['id']}."
    failed_id = service["deployments"][1]["id"]
    assert messages[1] == f"(service web) (deployment {failed_id}) deployment failed: tasks failed to start."

    _advance(sim_sandbox, 2 * T)
    service = _service(ecs, "sim-broken", "web")
    assert _summary(service) == [("PRIMARY", "sim-broken:1", "COMPLETED", 2, 0)]
    assert service["taskDefinition"] == old


def test_broken_image_without_circuit_breaker_stays_in_progress(sim_sandbox: Sandbox, ecs: Any) -> None:
    """Without the circuit breaker a broken deployment never ends; failed tasks keep counting up."""
    _rolling_service(sim_sandbox, ecs, "sim-stuck", 2)
    _advance(sim_sandbox, 2 * T)
    _fargate_taskdef(ecs, "sim-stuck", "repo/app:broken")
    ecs.update_service(cluster="sim-stuck", service="web", taskDefinition="sim-stuck:2")
    _advance(sim_sandbox, 30 * T)
    assert _summary(_service(ecs, "sim-stuck", "web")) == [
        ("PRIMARY", "sim-stuck:2", "IN_PROGRESS", 0, 30),
        ("ACTIVE", "sim-stuck:1", "COMPLETED", 2, 0),
    ]


def test_circuit_breaker_without_rollback_leaves_the_failed_deployment_primary(
    sim_sandbox: Sandbox, ecs: Any
) -> None:
    """With the breaker but no rollback, the deployment is FAILED, stays PRIMARY, and starts nothing more."""
    _rolling_service(sim_sandbox, ecs, "sim-norollback", 1, breaker={"enable": True, "rollback": False})
    _advance(sim_sandbox, T)
    _fargate_taskdef(ecs, "sim-norollback", "nginx:broken")
    ecs.update_service(cluster="sim-norollback", service="web", taskDefinition="sim-norollback:2")
    _advance(sim_sandbox, 10 * T)
    assert _summary(_service(ecs, "sim-norollback", "web")) == [
        ("PRIMARY", "sim-norollback:2", "FAILED", 0, 3),
        ("ACTIVE", "sim-norollback:1", "COMPLETED", 1, 0),
    ]


def test_failure_pattern_is_configurable(sim_sandbox: Sandbox, ecs: Any) -> None:
    """Any container image matching the configured pattern fails, not only `*:broken*`."""
    sim_sandbox.simulator.configure(failure_pattern="*/bad-*")
    ecs.create_cluster(clusterName="sim-pattern", capacityProviders=["FARGATE"])
    ecs.register_task_definition(
        family="sim-pattern",
        containerDefinitions=[
            {"name": "app", "image": "nginx:broken", "memory": 128},
            {"name": "sidecar", "image": "repo/bad-sidecar:1", "memory": 64},
        ],
    )
    ecs.create_service(cluster="sim-pattern", serviceName="web", taskDefinition="sim-pattern", desiredCount=1)
    _advance(sim_sandbox, 3 * T)
    assert _summary(_service(ecs, "sim-pattern", "web")) == [
        ("PRIMARY", "sim-pattern:1", "IN_PROGRESS", 0, 3)
    ]


# -- task sets (EXTERNAL controller) ---------------------------------------------------------------


def _external_service(sandbox: Sandbox, ecs: Any, cluster: str, desired: int) -> None:
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE"])
    ecs.create_service(
        cluster=cluster, serviceName="web", desiredCount=desired, deploymentController={"type": "EXTERNAL"}
    )


def _create_task_set(sandbox: Sandbox, ecs: Any, cluster: str, image: str, sha: str, **extra: Any) -> dict:
    return ecs.create_task_set(
        cluster=cluster,
        service="web",
        taskDefinition=_fargate_taskdef(ecs, cluster, image),
        externalId=sha,
        launchType="FARGATE",
        networkConfiguration=_network(sandbox),
        **extra,
    )["taskSet"]


def test_task_set_lifecycle_on_fargate(sim_sandbox: Sandbox, ecs: Any) -> None:
    """A Fargate task set (task-level memory, awsvpc) stabilises over time, becomes primary, scales,
    and drains away when deleted; the service reports its task sets and their summed counts."""
    _external_service(sim_sandbox, ecs, "sim-ext", 2)
    blue = _create_task_set(sim_sandbox, ecs, "sim-ext", "nginx:1", "a" * 40)
    assert blue["id"].startswith("ecs-svc/")
    assert blue["taskSetArn"].endswith(f":task-set/sim-ext/web/{blue['id']}")
    assert blue["taskSetArn"].startswith(f"arn:aws:ecs:{sim_sandbox.region}:")
    assert (blue["status"], blue["stabilityStatus"], blue["computedDesiredCount"]) == (
        "ACTIVE",
        "STABILIZING",
        2,
    )
    assert blue["scale"] == {"value": 100.0, "unit": "PERCENT"}
    assert (blue["platformVersion"], blue["platformFamily"]) == ("LATEST", "Linux")

    ecs.update_service_primary_task_set(cluster="sim-ext", service="web", primaryTaskSet=blue["taskSetArn"])
    _advance(sim_sandbox, T)
    (described,) = ecs.describe_task_sets(cluster="sim-ext", service="web")["taskSets"]
    assert (described["status"], described["runningCount"], described["pendingCount"]) == ("PRIMARY", 1, 1)
    assert described["stabilityStatus"] == "STABILIZING"
    _advance(sim_sandbox, T)
    (described,) = ecs.describe_task_sets(cluster="sim-ext", service="web", taskSets=[blue["id"]])["taskSets"]
    assert (described["runningCount"], described["stabilityStatus"]) == (2, "STEADY_STATE")
    assert described["stabilityStatusAt"] > described["createdAt"]

    green = _create_task_set(
        sim_sandbox, ecs, "sim-ext", "nginx:2", "b" * 40, scale={"value": 50, "unit": "PERCENT"}
    )
    assert green["computedDesiredCount"] == 1
    _advance(sim_sandbox, T)
    service = _service(ecs, "sim-ext", "web")
    assert service["deployments"] == []
    assert [(ts["externalId"][0], ts["status"], ts["runningCount"]) for ts in service["taskSets"]] == [
        ("a", "PRIMARY", 2),
        ("b", "ACTIVE", 1),
    ]
    assert (service["runningCount"], service["pendingCount"]) == (3, 0)

    ecs.update_task_set(
        cluster="sim-ext", service="web", taskSet=green["taskSetArn"], scale={"value": 100, "unit": "PERCENT"}
    )
    switched = ecs.update_service_primary_task_set(
        cluster="sim-ext", service="web", primaryTaskSet=green["id"]
    )
    assert switched["taskSet"]["status"] == "PRIMARY"
    deleted = ecs.delete_task_set(cluster="sim-ext", service="web", taskSet=blue["taskSetArn"], force=True)
    assert deleted["taskSet"]["status"] == "DRAINING"
    service = _service(ecs, "sim-ext", "web")
    assert [(ts["status"], ts["computedDesiredCount"]) for ts in service["taskSets"]] == [
        ("PRIMARY", 2),
        ("DRAINING", 0),
    ]
    _advance(sim_sandbox, T)
    service = _service(ecs, "sim-ext", "web")
    assert [(ts["status"], ts["runningCount"], ts["stabilityStatus"]) for ts in service["taskSets"]] == [
        ("PRIMARY", 2, "STEADY_STATE")
    ]
    missing = ecs.describe_task_sets(cluster="sim-ext", service="web", taskSets=[blue["taskSetArn"]])
    assert missing["failures"] == [{"arn": blue["taskSetArn"], "reason": "MISSING"}]


def test_broken_task_set_never_stabilises(sim_sandbox: Sandbox, ecs: Any) -> None:
    """A task set whose image cannot start keeps 0 running and stays STABILIZING."""
    _external_service(sim_sandbox, ecs, "sim-ext-broken", 2)
    _create_task_set(sim_sandbox, ecs, "sim-ext-broken", "nginx:broken", "c" * 40)
    _advance(sim_sandbox, 20 * T)
    (task_set,) = ecs.describe_task_sets(cluster="sim-ext-broken", service="web")["taskSets"]
    assert (task_set["runningCount"], task_set["pendingCount"], task_set["stabilityStatus"]) == (
        0,
        2,
        "STABILIZING",
    )


def test_task_set_errors_are_ecs_errors(sim_sandbox: Sandbox, ecs: Any) -> None:
    """Task-set calls on an ECS-controller service, unknown task sets and unforced deletes fail cleanly."""
    _rolling_service(sim_sandbox, ecs, "sim-ts-errors", 1)
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="EXTERNAL"):
        ecs.describe_task_sets(cluster="sim-ts-errors", service="web")
    with pytest.raises(ecs.exceptions.ServiceNotFoundException):
        ecs.describe_task_sets(cluster="sim-ts-errors", service="nope")
    _external_service(sim_sandbox, ecs, "sim-ts-errors-ext", 1)
    with pytest.raises(ecs.exceptions.TaskSetNotFoundException):
        ecs.update_service_primary_task_set(
            cluster="sim-ts-errors-ext", service="web", primaryTaskSet="ecs-svc/1"
        )
    task_set = _create_task_set(sim_sandbox, ecs, "sim-ts-errors-ext", "nginx:1", "d" * 40)
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="scaled down to zero"):
        ecs.delete_task_set(cluster="sim-ts-errors-ext", service="web", taskSet=task_set["id"])


def test_a_client_token_creates_one_task_set_or_service_however_often_the_request_is_sent(
    sim_sandbox: Sandbox, ecs: Any
) -> None:
    """CreateTaskSet and CreateService sent again with the same clientToken (in the same cluster) create
    nothing more and answer the first resource as it is now, even with other parameters; another token, or
    the same token in another cluster, creates another; a token ECS would refuse is refused."""
    _external_service(sim_sandbox, ecs, "sim-token", 2)
    _external_service(sim_sandbox, ecs, "sim-token-b", 2)
    first = _create_task_set(sim_sandbox, ecs, "sim-token", "nginx:1", "e" * 40, clientToken="tok-1")
    _advance(sim_sandbox, T)
    again = _create_task_set(sim_sandbox, ecs, "sim-token", "nginx:1", "e" * 40, clientToken="tok-1")
    assert again["taskSetArn"] == first["taskSetArn"]
    assert (again["runningCount"], again["createdAt"]) == (1, first["createdAt"])  # described now
    other_params = _create_task_set(sim_sandbox, ecs, "sim-token", "nginx:9", "f" * 40, clientToken="tok-1")
    assert other_params["taskSetArn"] == first["taskSetArn"]
    (listed,) = ecs.describe_task_sets(cluster="sim-token", service="web")["taskSets"]
    assert listed["taskSetArn"] == first["taskSetArn"]

    other_token = _create_task_set(sim_sandbox, ecs, "sim-token", "nginx:1", "e" * 40, clientToken="tok-2")
    other_cluster = _create_task_set(
        sim_sandbox, ecs, "sim-token-b", "nginx:1", "e" * 40, clientToken="tok-1"
    )
    assert len({first["taskSetArn"], other_token["taskSetArn"], other_cluster["taskSetArn"]}) == 3
    assert len(ecs.describe_task_sets(cluster="sim-token", service="web")["taskSets"]) == 2

    arn = _fargate_taskdef(ecs, "sim-token", "nginx:1")
    service = {
        "cluster": "sim-token", "serviceName": "api", "taskDefinition": arn, "desiredCount": 1,
        "launchType": "FARGATE", "networkConfiguration": _network(sim_sandbox), "clientToken": "svc-1",
    }  # fmt: skip
    created = ecs.create_service(**service)["service"]
    _advance(sim_sandbox, 2 * T)
    repeated = ecs.create_service(**service)["service"]
    assert repeated["serviceArn"] == created["serviceArn"]
    assert [d["id"] for d in repeated["deployments"]] == [d["id"] for d in created["deployments"]]
    assert (repeated["runningCount"], repeated["deployments"][0]["rolloutState"]) == (1, "COMPLETED")

    for token in ("x" * 37, "with space"):
        with pytest.raises(ecs.exceptions.InvalidParameterException, match="clientToken"):
            _create_task_set(sim_sandbox, ecs, "sim-token", "nginx:1", "e" * 40, clientToken=token)


# -- control API and shapes ------------------------------------------------------------------------


def _http(sandbox: Sandbox, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(sandbox.endpoint + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_control_api_moves_the_clock_and_reports_state(sim_sandbox: Sandbox, ecs: Any) -> None:
    """POST /_sandbox/clock/advance moves simulated time, GET /_sandbox/state shows the deployments, and
    POST /_sandbox/config changes the settings; bad requests get 400/404/405 with a JSON error."""
    _rolling_service(sim_sandbox, ecs, "sim-http", 2)
    before = sim_sandbox.simulator.clock.now()
    status, reply = _http(sim_sandbox, "POST", "/_sandbox/clock/advance", {"seconds": 2 * T})
    assert status == 200
    assert datetime.fromisoformat(reply["now"]) == sim_sandbox.simulator.clock.now()
    assert (sim_sandbox.simulator.clock.now() - before).total_seconds() == 2 * T
    assert _summary(_service(ecs, "sim-http", "web"))[0][2] == "COMPLETED"

    status, state = _http(sim_sandbox, "GET", "/_sandbox/state")
    assert status == 200 and state["taskStartSeconds"] == T and state["manual"] is True
    (mine,) = [s for s in state["services"] if s["serviceArn"].endswith(":service/sim-http/web")]
    assert mine["deployments"][0]["rolloutState"] == "COMPLETED"
    assert datetime.fromisoformat(mine["deployments"][0]["createdAt"]).tzinfo is not None

    status, settings = _http(
        sim_sandbox, "POST", "/_sandbox/config", {"failurePattern": "*:bad", "taskStartSeconds": 5}
    )
    assert status == 200 and (settings["failurePattern"], settings["taskStartSeconds"]) == ("*:bad", 5.0)
    assert sim_sandbox.simulator.failure_pattern == "*:bad"

    assert _http(sim_sandbox, "POST", "/_sandbox/config", {"colour": "red"})[0] == 400
    assert _http(sim_sandbox, "POST", "/_sandbox/clock/advance", {"seconds": "soon"})[0] == 400
    assert _http(sim_sandbox, "GET", "/_sandbox/clock/advance")[0] == 405
    assert _http(sim_sandbox, "GET", "/_sandbox/nothing")[0] == 404


def test_shape_check_catches_what_botocore_would_drop() -> None:
    """The shape check used on every reply here reports unknown keys, wrong types and bad enum values."""
    assert (
        shape_errors(
            {"id": "ecs-svc/1", "status": "PRIMARY", "runningCount": 1, "createdAt": 1.5}, "Deployment"
        )
        == []
    )
    problems = shape_errors(
        {"status": "PRIMARY", "rolloutState": "DONE", "runningCount": "1", "taskCount": 1}, "Deployment"
    )
    assert len(problems) == 3
    assert any("taskCount" in p for p in problems) and any("DONE" in p for p in problems)


def test_sandbox_reset_forgets_simulated_services(sim_sandbox: Sandbox) -> None:
    """After Sandbox.reset() the simulator holds nothing and ids repeat from the start (deterministic)."""
    sim_sandbox.reset()
    assert sim_sandbox.simulator.services == {}
    sim_sandbox.seed(SEED_FILE)


def test_every_reply_is_shape_checked(sim_sandbox: Sandbox, ecs: Any) -> None:
    """The checked client rejects a reply carrying a key botocore's shape lacks (the check can fail)."""

    def bogus(call: Any, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "clusterCount": 1}

    posts = sim_sandbox.overlay.post_processors.setdefault("ListClusters", [])
    posts.append(bogus)
    try:
        with pytest.raises(AssertionError, match="clusterCount: not a member"):
            ecs.list_clusters()
    finally:
        posts.remove(bogus)
