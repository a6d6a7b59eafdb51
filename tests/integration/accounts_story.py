"""Two accounts on one sim sandbox, for the tests of several accounts: the home account (123456789012,
eu-west-1) runs manifests-example; a second account (222222222222, us-east-1), entered by assuming a role
with an external id, runs cluster ``staging`` with a ``worker`` of the same task-definition family.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from gitops_story import Story

from agent.config import AccountConfig

HOME, OTHER = "123456789012", "222222222222"
EXTERNAL_ID = "acme-ecs-gitops-7f3a"
STAGING_SEED: dict[str, Any] = {
    "apiVersion": "ecs-gitops/v1",
    "kind": "SandboxSeed",
    "region": "us-east-1",
    "vpc": {
        "name": "staging",
        "cidr": "10.1.0.0/16",
        "subnets": [
            {"name": "private-a", "cidr": "10.1.1.0/24", "availabilityZone": "us-east-1a"},
            {"name": "private-b", "cidr": "10.1.2.0/24", "availabilityZone": "us-east-1b"},
        ],
        "securityGroups": ["workers"],
    },
}
STAGING_CLUSTER = """\
apiVersion: ecs-gitops/v1
kind: Cluster
metadata:
  name: staging
spec:
  capacityProviders: [FARGATE, FARGATE_SPOT]
"""
STAGING_WORKER = """\
apiVersion: ecs-gitops/v1
kind: Service
metadata:
  name: worker-staging
spec:
  cluster: staging
  serviceName: worker
  taskDefinition: ../taskdefs/worker.yaml
  desiredCount: 2
  launchType: FARGATE
  networkConfiguration:
    awsvpcConfiguration:
      subnets: [{name: private-a}, {name: private-b}]
      securityGroups: [{name: workers}]
"""


def _trust(external_id: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{HOME}:role/ecs-gitops-agent"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
                }
            ],
        }
    )


def accounts(external_id: str) -> tuple[AccountConfig, ...]:
    return (
        AccountConfig(
            name="prod",
            clusters=("prod", "ops"),
            region="eu-west-1",
            role_arn=f"arn:aws:iam::{HOME}:role/ecs-gitops-deployer",
        ),
        AccountConfig(
            name="staging",
            clusters=("staging",),
            region="us-east-1",
            role_arn=f"arn:aws:iam::{OTHER}:role/ecs-gitops-deployer",
            external_id=external_id,
        ),
    )


def seed_second_account(sandbox: Any) -> Any:
    """The sandbox with the second account seeded and its deployer role trusting the home account."""
    sandbox.seed(STAGING_SEED, account=OTHER)
    sandbox.client("iam", account=OTHER).create_role(
        RoleName="ecs-gitops-deployer", AssumeRolePolicyDocument=_trust(EXTERNAL_ID)
    )
    return sandbox


def two_account_story(sandbox: Any, tmp_path: Path, external_id: str = EXTERNAL_ID) -> Story:
    story = Story(sandbox, tmp_path)
    (story.root / "platform" / "staging.yaml").write_text(STAGING_CLUSTER)
    (story.root / "services" / "worker-staging.yaml").write_text(STAGING_WORKER)
    story.config = replace(story.config, accounts=accounts(external_id))
    story.agent = story.new_agent()
    return story
