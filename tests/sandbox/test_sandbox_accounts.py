"""One sandbox, several accounts: an assumed role's credentials act in the role's account, and AssumeRole
honours the external id a role's trust policy asks for."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from agent.sandbox.server import Sandbox

OTHER = "222222222222"


def _trust(external_id: str | None) -> str:
    statement: dict[str, object] = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def test_each_account_sees_only_its_own_resources(sandbox: Sandbox) -> None:
    """Clusters and Managed Instances capacity providers made in one account are not seen from another."""
    other = sandbox.client("ecs", account=OTHER)
    other.create_cluster(clusterName="acct-b")
    managed = {
        "infrastructureRoleArn": f"arn:aws:iam::{OTHER}:role/ecsInfrastructureRole",
        "instanceLaunchTemplate": {
            "ec2InstanceProfileArn": f"arn:aws:iam::{OTHER}:instance-profile/ecsInstanceProfile",
            "networkConfiguration": {"subnets": ["subnet-12345678"]},
        },
    }
    created = other.create_capacity_provider(
        name="acct-b-mi", cluster="acct-b", managedInstancesProvider=managed
    )
    assert created["capacityProvider"]["capacityProviderArn"] == (
        f"arn:aws:ecs:eu-west-1:{OTHER}:capacity-provider/acct-b-mi"
    )
    assert other.list_clusters()["clusterArns"] == [f"arn:aws:ecs:eu-west-1:{OTHER}:cluster/acct-b"]

    home = sandbox.client("ecs")
    assert not [a for a in home.list_clusters()["clusterArns"] if a.endswith("/acct-b")]
    seen = home.describe_capacity_providers(capacityProviders=["acct-b-mi"])
    assert seen["capacityProviders"] == []
    # The same name is free in the home account: capacity-provider names are per account.
    home.create_cluster(clusterName="acct-b")
    home.create_capacity_provider(name="acct-b-mi", cluster="acct-b", managedInstancesProvider=managed)
    assert other.describe_capacity_providers(capacityProviders=["acct-b-mi"], cluster="acct-b")[
        "capacityProviders"
    ][0]["capacityProviderArn"].startswith(f"arn:aws:ecs:eu-west-1:{OTHER}:")


def test_assume_role_honours_the_trust_policys_external_id(sandbox: Sandbox) -> None:
    """A role whose trust policy requires an external id is refused without it or with another one."""
    iam = sandbox.client("iam", account=OTHER)
    iam.create_role(RoleName="needs-id", AssumeRolePolicyDocument=_trust("s3cret-id"))
    iam.create_role(RoleName="open-role", AssumeRolePolicyDocument=_trust(None))
    sts = sandbox.client("sts")
    arn = f"arn:aws:iam::{OTHER}:role/needs-id"
    for extra in ({}, {"ExternalId": "wrong-id"}):
        with pytest.raises(ClientError) as caught:
            sts.assume_role(RoleArn=arn, RoleSessionName="test", **extra)
        assert caught.value.response["Error"]["Code"] == "AccessDenied"
        assert arn in caught.value.response["Error"]["Message"]
    granted = sts.assume_role(RoleArn=arn, RoleSessionName="test", ExternalId="s3cret-id")
    assert granted["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{OTHER}:assumed-role/needs-id/test"
    sts.assume_role(RoleArn=f"arn:aws:iam::{OTHER}:role/open-role", RoleSessionName="test")
