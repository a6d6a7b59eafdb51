"""Services on the CODE_DEPLOY controller in the sandbox: CodeDeploy's task set, what ECS refuses on
them, and the in-place migration to the ECS controller (UpdateService deploymentController ECS)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_simulator import T, checked_client

from agent.sandbox.server import Sandbox


def _taskdef(ecs: Any, image: str) -> str:
    return ecs.register_task_definition(
        family="cd-app", containerDefinitions=[{"name": "app", "image": image, "memory": 128}]
    )["taskDefinition"]["taskDefinitionArn"]


@pytest.fixture
def ecs(sim_sandbox: Sandbox) -> Any:
    sim_sandbox.simulator.configure(failure_pattern="*:broken*", task_start_seconds=T)
    client = checked_client(sim_sandbox)
    client.create_cluster(clusterName="cd")
    return client


def test_code_deploy_service_runs_one_primary_task_set(sim_sandbox: Sandbox, ecs: Any) -> None:
    """CreateService with CODE_DEPLOY makes a PRIMARY task set whose tasks start over time."""
    v1 = _taskdef(ecs, "app:1")
    ecs.create_service(
        cluster="cd",
        serviceName="legacy",
        taskDefinition=v1,
        desiredCount=2,
        launchType="EC2",
        deploymentController={"type": "CODE_DEPLOY"},
    )
    sim_sandbox.simulator.clock.advance(2 * T)
    service = ecs.describe_services(cluster="cd", services=["legacy"])["services"][0]
    assert service["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert service["deployments"] == []
    [task_set] = service["taskSets"]
    assert (task_set["status"], task_set["taskDefinition"], task_set["runningCount"]) == ("PRIMARY", v1, 2)
    assert task_set["stabilityStatus"] == "STEADY_STATE"

    # ECS refuses a new task definition on it: that is a CodeDeploy deployment.
    with pytest.raises(ClientError) as caught:
        ecs.update_service(cluster="cd", service="legacy", taskDefinition=_taskdef(ecs, "app:2"))
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "CODE_DEPLOY deployment controller" in caught.value.response["Error"]["Message"]
    ecs.update_service(cluster="cd", service="legacy", desiredCount=3)  # what CODE_DEPLOY allows


def test_migration_to_the_ecs_controller_replaces_the_task_set(sim_sandbox: Sandbox, ecs: Any) -> None:
    """UpdateService CODE_DEPLOY -> ECS starts an ECS deployment that replaces CodeDeploy's tasks."""
    v1 = _taskdef(ecs, "app:1")
    ecs.create_service(
        cluster="cd",
        serviceName="moving",
        taskDefinition=v1,
        desiredCount=2,
        launchType="EC2",
        deploymentController={"type": "CODE_DEPLOY"},
    )
    sim_sandbox.simulator.clock.advance(2 * T)
    v2 = _taskdef(ecs, "app:2")
    updated = ecs.update_service(
        cluster="cd",
        service="moving",
        taskDefinition=v2,
        deploymentController={"type": "ECS"},
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )["service"]
    assert updated["deploymentController"] == {"type": "ECS"}
    assert "taskSets" not in updated
    primary, old = updated["deployments"]
    assert (primary["status"], primary["taskDefinition"], primary["rolloutState"]) == (
        "PRIMARY",
        v2,
        "IN_PROGRESS",
    )
    assert (old["status"], old["taskDefinition"], old["runningCount"]) == ("ACTIVE", v1, 2)

    sim_sandbox.simulator.clock.advance(2 * T)
    service = ecs.describe_services(cluster="cd", services=["moving"])["services"][0]
    [done] = service["deployments"]
    assert (done["taskDefinition"], done["rolloutState"], done["runningCount"]) == (v2, "COMPLETED", 2)
    assert service["taskDefinition"] == v2


def test_only_the_code_deploy_service_refuses_a_new_task_definition(sim_sandbox: Sandbox, ecs: Any) -> None:
    """Beside a CODE_DEPLOY service, an ECS-controller service still takes a new task definition."""
    v1 = _taskdef(ecs, "app:1")
    for name, controller in (("legacy", "CODE_DEPLOY"), ("modern", "ECS")):
        ecs.create_service(
            cluster="cd",
            serviceName=name,
            taskDefinition=v1,
            desiredCount=1,
            launchType="EC2",
            deploymentController={"type": controller},
        )
    v2 = _taskdef(ecs, "app:2")
    updated = ecs.update_service(cluster="cd", service="modern", taskDefinition=v2)["service"]
    assert updated["taskDefinition"] == v2
    with pytest.raises(ClientError) as caught:
        ecs.update_service(cluster="cd", service="legacy", taskDefinition=v2)
    assert "CODE_DEPLOY deployment controller" in caught.value.response["Error"]["Message"]
