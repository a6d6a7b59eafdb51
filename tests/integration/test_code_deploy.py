"""A service an existing account runs on CodeDeploy (deployment controller CODE_DEPLOY), through the agent.

The agent does not deploy through CodeDeploy: until the manifest opts in, the plan shows the change
held, the commit gets a failure status saying what to set, and ECS is left untouched. With
``migrateFromCodeDeploy: true`` one UpdateService moves the service to the native ECS engine, which
rolls the new revision out; later commits roll out like any other service's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gitops_story import Story

from agent.manifests.tree import DirTree
from agent.plan.render import render_text

CLUSTER = """\
apiVersion: ecs-gitops/v1
kind: Cluster
metadata:
  name: legacy
spec:
  capacityProviders: []
"""
SERVICE = """\
apiVersion: ecs-gitops/v1
kind: Service
metadata:
  name: checkout
spec:
  cluster: legacy
  desiredCount: 2
  launchType: EC2
  taskDefinition:
    family: checkout
    containerDefinitions:
      - {name: checkout, image: "acme/checkout:2", memory: 128}
"""
SERVICE_FILE = "services/checkout.yaml"


def _existing_code_deploy_service(sandbox: Any) -> str:
    """What the account already runs: checkout:1 on CodeDeploy, made outside the agent."""
    ecs = sandbox.client("ecs")
    ecs.create_cluster(clusterName="legacy")
    arn = ecs.register_task_definition(
        family="checkout",
        containerDefinitions=[{"name": "checkout", "image": "acme/checkout:1", "memory": 128}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster="legacy",
        serviceName="checkout",
        taskDefinition=arn,
        desiredCount=2,
        launchType="EC2",
        deploymentController={"type": "CODE_DEPLOY"},
    )
    sandbox.simulator.clock.advance(10)
    return str(arn)


def test_code_deploy_service_is_held_then_migrated_when_asked(sim_sandbox: Any, tmp_path: Path) -> None:
    """Held with a failure status and no AWS write; migrated by one UpdateService once the manifest asks."""
    v1 = _existing_code_deploy_service(sim_sandbox)
    story = Story(sim_sandbox, tmp_path, copy_example=False)
    (story.root / "platform").mkdir()
    (story.root / "platform" / "legacy.yaml").write_text(CLUSTER)
    (story.root / "services").mkdir()
    (story.root / SERVICE_FILE).write_text(SERVICE)

    plan = story.agent.reconciler.plan(DirTree(story.root)).plan
    text = render_text(plan)
    assert (
        "~ Service legacy/checkout\n    ! held: runs on CodeDeploy (deployment controller CODE_DEPLOY)"
        in text
    )
    assert '~ /deploymentController/type: "CODE_DEPLOY" -> "ECS"' in text

    held = story.commit("checkout 2 (still on CodeDeploy)")
    story.aws.counter.reset()
    result = story.settle()
    assert result.outcome == "failed"
    assert story.aws.counter.mutating() == {}  # nothing registered, nothing updated
    status = story.notes(held)["ecs-gitops/legacy/checkout"]
    assert status["state"] == "failure"
    assert "set migrateFromCodeDeploy: true" in status["description"]
    ecs = story.ecs
    service = ecs.describe_services(cluster="legacy", services=["checkout"])["services"][0]
    assert service["deploymentController"] == {"type": "CODE_DEPLOY"}
    assert [ts["taskDefinition"] for ts in service["taskSets"]] == [v1]

    migrate = story.commit(
        "migrate checkout to the native ECS engine",
        {SERVICE_FILE: ("  cluster: legacy\n", "  cluster: legacy\n  migrateFromCodeDeploy: true\n")},
    )
    plan = story.agent.reconciler.plan(DirTree(story.root)).plan
    assert "    # migration from CodeDeploy: UpdateService switches" in render_text(plan)
    story.aws.counter.reset()
    result = story.settle()
    assert result.outcome == "unchanged"
    assert story.aws.counter.counts["ecs.UpdateService"] == 1
    assert story.notes(migrate)["ecs-gitops/legacy/checkout"]["state"] == "success"
    service = ecs.describe_services(cluster="legacy", services=["checkout"])["services"][0]
    assert service["deploymentController"] == {"type": "ECS"}
    assert "taskSets" not in service
    [deployment] = service["deployments"]
    assert deployment["taskDefinition"].endswith("task-definition/checkout:2")
    assert (deployment["rolloutState"], deployment["runningCount"]) == ("COMPLETED", 2)

    # From now on it is a service like any other: a bump rolls out with the native engine.
    story.commit("checkout 3", {SERVICE_FILE: ("acme/checkout:2", "acme/checkout:3")})
    story.settle()
    assert story.running("legacy", "checkout") == "checkout:3"
