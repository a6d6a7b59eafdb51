"""Accounts in the agent config: validated with pointers, and one commit's manifests split by account."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.aws.accounts import Account, accounts_of, split_desired
from agent.config import AccountConfig, AgentConfig, load_config
from agent.errors import InvalidInput
from agent.manifests import load_desired
from agent.manifests.model import Desired, Manifest, Source, TaskDefinitionFile
from agent.manifests.tree import DirTree
from agent.sandbox.harness import write

HEADER = "apiVersion: ecs-gitops/v1\nkind: AgentConfig\n"
PROD = Account("prod", "eu-west-1", ("prod", "ops"), "111111111111", "arn:aws:iam::111111111111:role/d")
STAGING = Account("staging", "us-east-1", ("staging",), "222222222222", "arn:aws:iam::222222222222:role/d")


def _m(kind: str, name: str, **spec: object) -> Manifest:
    return Manifest(kind, name, dict(spec), Source(f"{kind.lower()}s/{name}.yaml"))


def _td(family: str) -> TaskDefinitionFile:
    return TaskDefinitionFile(
        {"family": family, "containerDefinitions": []}, Source(f"taskdefs/{family}.json")
    )


def _desired() -> Desired:
    desired = Desired()
    desired.clusters = {
        "prod": _m("Cluster", "prod", capacityProviders=["FARGATE", "shared-asg"]),
        "staging-cluster": _m(
            "Cluster", "staging-cluster", clusterName="staging", capacityProviders=["shared-asg", "stg-asg"]
        ),
    }
    desired.capacity_providers = {
        "shared-asg": _m("CapacityProvider", "shared-asg", autoScalingGroupProvider={}),
        "stg-asg": _m("CapacityProvider", "stg-asg", autoScalingGroupProvider={}),
        "lonely-asg": _m("CapacityProvider", "lonely-asg", autoScalingGroupProvider={}),
        "stg-mi": _m("CapacityProvider", "stg-mi", cluster="staging-cluster", managedInstancesProvider={}),
    }
    desired.services = {
        "web": _m("Service", "web", cluster="prod", strategy="canary"),
        "worker": _m("Service", "worker", cluster="prod"),
        "worker-stg": _m("Service", "worker-stg", cluster="staging-cluster", strategy="rolling-safe"),
    }
    desired.strategies = {
        name: _m("DeploymentStrategy", name) for name in ("canary", "rolling-safe", "unused")
    }
    desired.windows = {"freeze": _m("Window", "freeze")}
    desired.task_definitions = {f: _td(f) for f in ("web", "worker", "cron")}
    desired.service_task_family = {"web": "web", "worker": "worker", "worker-stg": "worker"}
    return desired


def test_split_desired_places_every_kind_by_cluster() -> None:
    """Services, clusters and providers go where their cluster is; shared things go to each user."""
    (prod_account, prod), (staging_account, staging) = split_desired(_desired(), [PROD, STAGING])
    assert (prod_account, staging_account) == (PROD, STAGING)
    assert set(prod.services) == {"web", "worker"} and set(staging.services) == {"worker-stg"}
    assert set(prod.clusters) == {"prod"} and set(staging.clusters) == {"staging-cluster"}
    # A family runs in both accounts: both register it. One no service runs goes to the first account.
    assert set(prod.task_definitions) == {"web", "worker", "cron"}
    assert set(staging.task_definitions) == {"worker"}
    assert staging.service_task_family == {"worker-stg": "worker"}
    # Auto Scaling group providers go to every account whose Cluster lists them; Managed Instances to
    # their cluster's account; one no cluster lists to the first account.
    assert set(prod.capacity_providers) == {"shared-asg", "lonely-asg"}
    assert set(staging.capacity_providers) == {"shared-asg", "stg-asg", "stg-mi"}
    # Strategies follow the services naming them (an unused one stays home); windows are everywhere.
    assert set(prod.strategies) == {"canary", "unused"} and set(staging.strategies) == {"rolling-safe"}
    assert set(prod.windows) == set(staging.windows) == {"freeze"}


def test_split_desired_skips_an_account_with_nothing_to_do() -> None:
    """An account whose clusters no manifest names is not planned at all (no AssumeRole for it)."""
    desired = _desired()
    desired.services.pop("worker-stg")
    desired.clusters.pop("staging-cluster")
    desired.capacity_providers = {}
    assert [a.name for a, _ in split_desired(desired, [PROD, STAGING])] == ["prod"]


def test_accounts_from_config_fill_region_and_account_id() -> None:
    """A missing region is the agent's; the account id comes from the role ARN when not given."""
    config = AgentConfig(
        accounts=(
            AccountConfig("prod", ("prod",), role_arn="arn:aws:iam::111111111111:role/deployer"),
            AccountConfig("home", ("ops",), region="us-west-2"),
        )
    )
    prod, home = accounts_of(config, "eu-west-1")
    assert (prod.region, prod.account_id, prod.ref.label) == (
        "eu-west-1",
        "111111111111",
        "prod (111111111111, eu-west-1)",
    )
    assert (home.region, home.account_id, home.role_arn, home.ref.label) == (
        "us-west-2",
        None,
        None,
        "home (us-west-2)",
    )
    assert accounts_of(AgentConfig(), "eu-west-1") == ()


def test_config_accounts_are_checked_with_pointers(tmp_path: Path) -> None:
    """Duplicate names, a cluster in two accounts, a mismatched account id and a lone external id."""
    path = tmp_path / "agent.yaml"
    path.write_text(
        HEADER
        + """accounts:
  - name: prod
    accountId: "999999999999"
    roleArn: arn:aws:iam::111111111111:role/deployer
    clusters: [prod, shared]
  - name: prod
    clusters: [ops]
  - name: staging
    externalId: only-with-a-role
    clusters: [shared]
"""
    )
    with pytest.raises(InvalidInput) as caught:
        load_config(str(path))
    found = {(p.pointer, p.message) for p in caught.value.problems}
    assert found == {
        (
            "/accounts/0/accountId",
            "999999999999 is not the account of roleArn arn:aws:iam::111111111111:role/deployer",
        ),
        ("/accounts/1/name", '"prod" already names /accounts/0'),
        ("/accounts/2/clusters/0", 'cluster "shared" is already in account "prod"'),
        ("/accounts/2/externalId", "needs roleArn: the role whose trust policy asks for it"),
    }
    assert all(p.file == str(path) for p in caught.value.problems)


def test_config_account_shapes_are_schema_checked(tmp_path: Path) -> None:
    """A role that is not a role ARN and an empty cluster list are schema problems at their pointers."""
    path = tmp_path / "agent.yaml"
    path.write_text(HEADER + "accounts:\n  - {name: prod, roleArn: 'arn:aws:iam::1:user/x', clusters: []}\n")
    with pytest.raises(InvalidInput) as caught:
        load_config(str(path))
    assert {p.pointer for p in caught.value.problems} == {"/accounts/0/roleArn", "/accounts/0/clusters"}


def test_accounts_from_the_environment_are_json() -> None:
    """ECS_GITOPS_ACCOUNTS holds the list as JSON (a container sets it like any other variable)."""
    value = json.dumps(
        [{"name": "prod", "clusters": ["prod"], "roleArn": "arn:aws:iam::111111111111:role/d"}]
    )
    config = load_config(None, {"ECS_GITOPS_ACCOUNTS": value})
    assert config.accounts == (AccountConfig("prod", ("prod",), role_arn="arn:aws:iam::111111111111:role/d"),)
    with pytest.raises(InvalidInput) as caught:
        load_config(None, {"ECS_GITOPS_ACCOUNTS": "prod"})
    assert [(p.file, p.pointer) for p in caught.value.problems] == [("ECS_GITOPS_ACCOUNTS", "/accounts")]


def test_a_cluster_in_no_account_is_invalid(tmp_path: Path) -> None:
    """With accounts configured, a Service on a cluster no account lists is a problem at /spec/cluster."""
    write(
        tmp_path,
        "svc.yaml",
        "apiVersion: ecs-gitops/v1\nkind: Service\nmetadata: {name: api}\n"
        "spec:\n  cluster: dev\n  taskDefinition: td.json\n  desiredCount: 1\n",
    )
    write(
        tmp_path,
        "td.json",
        {"family": "api", "containerDefinitions": [{"name": "a", "image": "a:1", "memory": 128}]},
    )
    config = AgentConfig(accounts=(AccountConfig("prod", ("prod", "ops")),))
    with pytest.raises(InvalidInput) as caught:
        load_desired(DirTree(tmp_path), config)
    assert [(p.file, p.pointer, p.message) for p in caught.value.problems] == [
        (
            "svc.yaml",
            "/spec/cluster",
            'cluster "dev" is in no account of the agent config (accounts[].clusters: prod, ops)',
        )
    ]
