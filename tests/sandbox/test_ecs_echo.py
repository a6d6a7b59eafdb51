"""The sandbox answers like ECS: registered task definitions come back with the defaults ECS adds, it
refuses no task definition ECS registers, and a ROLLING deployment fails (and rolls back) on its alarms.

Every test shares ``sim_sandbox`` (a manual clock, 2 s per task start) with names of its own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_simulator import _network

from agent.plan.diff import diff
from agent.plan.taskdefs import minimal_task_definition, normalise_task_definition, register_request
from agent.sandbox.cli import add_sandbox_parser
from agent.sandbox.server import Sandbox, SandboxError

T = 2.0
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "ecs-output"
CATSDEF = CORPUS / "aws-samples__amazon-ecs-for-beginners-catsdogs__catsdef.json"

REQUEST: dict[str, Any] = {
    "family": "echo-web",
    "requiresCompatibilities": ["EC2"],
    "volumes": [
        {"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1", "authorizationConfig": {}}},
        {"name": "scratch", "dockerVolumeConfiguration": {"labels": {"team": "web"}}},
    ],
    "containerDefinitions": [
        {
            "name": "app",
            "image": "repo/app:1",
            "memory": 256,
            "portMappings": [{"containerPort": 80}],
            "healthCheck": {"command": ["CMD", "true"]},
            "mountPoints": [{"sourceVolume": "efs", "containerPath": "/data"}],
        }
    ],
}


def _described(sandbox: Sandbox, family: str) -> dict[str, Any]:
    ecs = sandbox.client("ecs")
    return ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]


def test_registered_task_definitions_come_back_with_ecs_defaults(sim_sandbox: Sandbox) -> None:
    """What ECS adds is there, and the planner's normaliser still sees the registered content."""
    sim_sandbox.client("ecs").register_task_definition(**copy.deepcopy(REQUEST))
    td = _described(sim_sandbox, "echo-web")
    app = td["containerDefinitions"][0]
    assert app["essential"] is True
    assert app["portMappings"] == [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}]
    assert app["healthCheck"] == {"command": ["CMD", "true"], "interval": 30, "timeout": 5, "retries": 3}
    efs = td["volumes"][0]["efsVolumeConfiguration"]
    assert efs["rootDirectory"] == "/" and efs["authorizationConfig"] == {"iam": "DISABLED"}
    docker = td["volumes"][1]["dockerVolumeConfiguration"]
    assert docker["driver"] == "local" and docker["scope"] == "task"
    assert td["enableFaultInjection"] is False
    assert diff(normalise_task_definition(td), normalise_task_definition(REQUEST)) == []


def test_awsvpc_host_ports_come_back_as_the_container_port(sim_sandbox: Sandbox) -> None:
    request = {**copy.deepcopy(REQUEST), "family": "echo-awsvpc", "networkMode": "awsvpc"}
    sim_sandbox.client("ecs").register_task_definition(**request)
    app = _described(sim_sandbox, "echo-awsvpc")["containerDefinitions"][0]
    assert app["portMappings"] == [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}]


def test_echo_verbatim_gives_the_request_back(sim_sandbox: Sandbox) -> None:
    """The switch for tests that need the request back as sent (moto's own additions aside)."""
    assert sim_sandbox.overlay is not None
    sim_sandbox.overlay.echo = "verbatim"
    try:
        sim_sandbox.client("ecs").register_task_definition(**{**copy.deepcopy(REQUEST), "family": "echo-raw"})
    finally:
        sim_sandbox.overlay.echo = "ecs"
    app = _described(sim_sandbox, "echo-raw")["containerDefinitions"][0]
    assert app["healthCheck"] == {"command": ["CMD", "true"]}
    assert app["portMappings"] == [{"containerPort": 80}]


def test_the_echo_mode_is_checked_and_offered_on_the_command_line() -> None:
    with pytest.raises(SandboxError, match="echo must be one of"):
        Sandbox(echo="loud")
    import argparse

    parser = argparse.ArgumentParser()
    add_sandbox_parser(parser.add_subparsers())
    assert parser.parse_args(["sandbox", "up", "--echo", "verbatim"]).echo == "verbatim"
    assert parser.parse_args(["sandbox", "up"]).echo == "ecs"


def test_the_beginners_catsdef_registers(sim_sandbox: Sandbox) -> None:
    """AWS's amazon-ecs-for-beginners catsdef: EC2, no task memory, a FireLens log_router with only a
    memoryReservation. ECS registered it (revision 16), so the sandbox must too, and it plans as no
    change against the file a user would write for it."""
    real = json.loads(CATSDEF.read_text(encoding="utf-8"))
    request = register_request(minimal_task_definition(real))
    request["family"] = "echo-catsdef"
    sim_sandbox.client("ecs").register_task_definition(**request)
    td = _described(sim_sandbox, "echo-catsdef")
    router = next(c for c in td["containerDefinitions"] if c["name"] == "log_router")
    assert router["memoryReservation"] == 50 and "memory" not in router
    assert (
        diff(normalise_task_definition(td), normalise_task_definition({**real, "family": "echo-catsdef"}))
        == []
    )


def test_a_container_without_any_memory_is_refused_like_ecs(sim_sandbox: Sandbox) -> None:
    """ContainerDefinition memory: "If using the EC2 launch type, you must specify either a task-level
    memory value or a container-level memory value." -- with neither, ECS's own message."""
    with pytest.raises(ClientError, match="At least one of 'memory' or 'memoryReservation'"):
        sim_sandbox.client("ecs").register_task_definition(
            family="echo-nomem", containerDefinitions=[{"name": "a", "image": "i"}]
        )
    sim_sandbox.client("ecs").register_task_definition(
        family="echo-taskmem", memory="512", containerDefinitions=[{"name": "a", "image": "i"}]
    )


# -- alarms on ROLLING deployments ------------------------------------------------------------------


def _fargate(ecs: Any, family: str, image: str) -> str:
    return ecs.register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "app", "image": image}],
    )["taskDefinition"]["taskDefinitionArn"]


def _alarmed_service(sandbox: Sandbox, cluster: str, alarm: str, rollback: bool) -> Any:
    ecs = sandbox.client("ecs")
    sandbox.simulator.configure(task_start_seconds=T)
    sandbox.client("cloudwatch").put_metric_alarm(
        AlarmName=alarm,
        MetricName="Errors",
        Namespace="Echo",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    sandbox.set_alarm(alarm, "OK")
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE"])
    first = _fargate(ecs, cluster, "nginx:1")
    ecs.create_service(
        cluster=cluster,
        serviceName="web",
        taskDefinition=first,
        desiredCount=3,
        launchType="FARGATE",
        networkConfiguration=_network(sandbox),
        deploymentConfiguration={
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "alarms": {"alarmNames": [alarm], "enable": True, "rollback": rollback},
        },
    )
    sandbox.simulator.clock.advance(3 * T)
    ecs.update_service(cluster=cluster, service="web", taskDefinition=_fargate(ecs, cluster, "nginx:2"))
    sandbox.simulator.clock.advance(T)
    return ecs


def _deployments(ecs: Any, cluster: str) -> list[tuple[str, str, str]]:
    service = ecs.describe_services(cluster=cluster, services=["web"])["services"][0]
    return [
        (d["status"], d["taskDefinition"].rsplit("/", 1)[-1], d["rolloutState"])
        for d in service["deployments"]
    ]


def test_an_alarm_in_alarm_fails_a_rolling_deployment_and_rolls_it_back(sim_sandbox: Sandbox) -> None:
    ecs = _alarmed_service(sim_sandbox, "echo-alarm", "echo-alarm-5xx", rollback=True)
    assert _deployments(ecs, "echo-alarm")[0] == ("PRIMARY", "echo-alarm:2", "IN_PROGRESS")
    sim_sandbox.set_alarm("echo-alarm-5xx", "ALARM")
    sim_sandbox.simulator.clock.advance(T)
    service = ecs.describe_services(cluster="echo-alarm", services=["web"])["services"][0]
    assert [(d["taskDefinition"].rsplit("/", 1)[-1], d["rolloutState"]) for d in service["deployments"]][
        :2
    ] == [
        ("echo-alarm:1", "IN_PROGRESS"),
        ("echo-alarm:2", "FAILED"),
    ]
    assert "echo-alarm-5xx" in service["deployments"][1]["rolloutStateReason"]
    assert any("echo-alarm-5xx" in e["message"] for e in service["events"][:3])
    sim_sandbox.simulator.clock.advance(6 * T)
    assert _deployments(ecs, "echo-alarm") == [("PRIMARY", "echo-alarm:1", "COMPLETED")]
    deployments = ecs.list_service_deployments(cluster="echo-alarm", service="web")["serviceDeployments"]
    assert deployments[0]["status"] == "ROLLBACK_SUCCESSFUL"


def test_an_alarm_without_rollback_only_fails_the_deployment(sim_sandbox: Sandbox) -> None:
    ecs = _alarmed_service(sim_sandbox, "echo-alarm-nr", "echo-alarm-nr-5xx", rollback=False)
    sim_sandbox.set_alarm("echo-alarm-nr-5xx", "ALARM")
    sim_sandbox.simulator.clock.advance(3 * T)
    assert _deployments(ecs, "echo-alarm-nr")[0] == ("PRIMARY", "echo-alarm-nr:2", "FAILED")


def test_an_alarm_that_stays_ok_lets_the_deployment_complete(sim_sandbox: Sandbox) -> None:
    ecs = _alarmed_service(sim_sandbox, "echo-alarm-ok", "echo-alarm-ok-5xx", rollback=True)
    sim_sandbox.simulator.clock.advance(6 * T)
    assert _deployments(ecs, "echo-alarm-ok") == [("PRIMARY", "echo-alarm-ok:2", "COMPLETED")]
