"""The ecs engine in an account lane: a native canary in the second account is started, followed and
reported with that account's clients (ListServiceDeployments / DescribeServiceDeployments there)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from accounts_story import OTHER, STAGING_SEED, seed_second_account, two_account_story

STAGING_LB: dict[str, Any] = {
    **STAGING_SEED,
    "vpc": {**STAGING_SEED["vpc"], "securityGroups": ["workers", "api"]},
    "roles": ["ecsInfrastructureRole"],
    "loadBalancers": [
        {
            "name": "staging",
            "subnets": ["private-a", "private-b"],
            "securityGroups": ["api"],
            "targetGroups": [{"name": "api-blue", "port": 9000}, {"name": "api-green", "port": 9000}],
            "listeners": [
                {
                    "port": 80,
                    "defaultTargetGroup": "api-blue",
                    "rules": [{"name": "api-prod", "priority": 5, "pathPattern": "/*", "forward": "api-blue"}],  # noqa: E501
                },
                {
                    "port": 8443,
                    "defaultTargetGroup": "api-green",
                    "rules": [{"name": "api-test", "priority": 5, "pathPattern": "/*", "forward": "api-green"}],  # noqa: E501
                },
            ],
        }
    ],
}
STAGING_API = """\
apiVersion: ecs-gitops/v1
kind: Service
metadata:
  name: api-staging
spec:
  cluster: staging
  serviceName: api
  taskDefinition: ../taskdefs/api-staging.json
  desiredCount: 2
  launchType: FARGATE
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{name: private-a}, {name: private-b}]
      securityGroups: [{name: api}]
  loadBalancers:
    - targetGroup: {name: api-blue}
      alternateTargetGroup: {name: api-green}
      productionListenerRule: {name: api-prod}
      testListenerRule: {name: api-test}
      role: {name: ecsInfrastructureRole}
      containerName: api
      containerPort: 9000
  strategy: {type: canary, engine: ecs, canary: {percent: 50, bake: 2m}, bake: 1m}
"""
CONTEXT = "ecs-gitops/staging/api"


@pytest.fixture(scope="module")
def two_accounts(sim_sandbox: Any) -> Any:
    """The sim sandbox with the second account seeded (with a load balancer for a native canary)."""
    sandbox = seed_second_account(sim_sandbox)
    sandbox.seed(STAGING_LB, account=OTHER)
    return sandbox


def _taskdef(root: Path, image: str) -> None:
    example = json.loads((root / "taskdefs" / "api.json").read_text())
    example["family"] = "api-staging"  # a family is defined once in the manifests
    example["containerDefinitions"][0]["image"] = image
    (root / "taskdefs" / "api-staging.json").write_text(json.dumps(example, indent=2))


def test_a_native_canary_in_the_second_account_is_followed_there(two_accounts: Any, tmp_path: Path) -> None:
    """A canary on engine ecs in the second account rolls out to success: the agent reads that account's
    service deployment, says where it is on the commit, and its status names the account."""
    story = two_account_story(two_accounts, tmp_path)
    (story.root / "services" / "api-staging.yaml").write_text(STAGING_API)
    _taskdef(story.root, "acme/api:2.4.1")
    first = story.commit("staging api")
    story.settle()
    assert story.notes(first).get(CONTEXT, {}).get("state") == "success", story.notes(first)
    other = two_accounts.client("ecs", account=OTHER, region="us-east-1")
    assert other.describe_services(cluster="staging", services=["api"])["services"][0]["runningCount"] == 2

    _taskdef(story.root, "acme/api:2.4.2")
    bump = story.commit("staging api 2.4.2")
    seen = []
    for _ in range(200):
        result = story.agent.tick()
        assert result is not None
        status = result.statuses[CONTEXT]
        if not seen or seen[-1] != status.description:
            seen.append(status.description)
        if result.wake_at is None:
            break
        story.advance(max(1.0, (result.wake_at - story.clock.now()).total_seconds()))
    note = story.notes(bump)[CONTEXT]
    assert (note["state"], note["description"]) == (
        "success",
        "api-staging:2 running 2/2 (canary) [staging 222222222222 us-east-1]",
    ), seen
    assert any(d.startswith("canary 50 % baking") for d in seen), seen

    deployments = other.list_service_deployments(cluster="staging", service="api")["serviceDeployments"]
    assert deployments[0]["status"] == "SUCCESSFUL"
    described = other.describe_service_deployments(
        serviceDeploymentArns=[deployments[0]["serviceDeploymentArn"]]
    )["serviceDeployments"][0]
    assert described["deploymentConfiguration"]["strategy"] == "CANARY"
    assert described["targetServiceRevision"]["arn"].startswith(f"arn:aws:ecs:us-east-1:{OTHER}:")
