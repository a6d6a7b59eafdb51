"""References by name resolve at plan time, with a clear error when nothing or several things match."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import git
import pytest

from agent.aws.clients import Aws
from agent.aws.resolving import Resolver
from agent.cli import main
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.errors import InvalidInput
from agent.manifests import load_desired
from agent.manifests.tree import DirTree
from agent.sandbox.harness import EXAMPLE, write

SUBNETS = "/spec/networkConfiguration/awsvpcConfiguration/subnets"


def _worker(root: Path, subnets: str) -> None:
    write(root, "taskdefs/worker.yaml", (EXAMPLE / "taskdefs" / "worker.yaml").read_text())
    text = (EXAMPLE / "services" / "worker.yaml").read_text()
    text = text.replace("subnets: [{name: private-a}, {name: private-b}]", f"subnets: {subnets}")
    write(root, "services/worker.yaml", text.replace("  strategy: rolling-safe\n", ""))


def test_names_resolve_to_ids(harness, tmp_path: Path) -> None:
    """Subnets and security groups given by name reach the plan as their IDs."""
    _worker(tmp_path, "[{name: private-a}]")
    result = harness.plan(tmp_path)
    svc = result.desired.services["worker"].spec
    assert svc["networkConfiguration"]["awsvpcConfiguration"]["subnets"][0].startswith("subnet-")
    assert svc["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"][0].startswith("sg-")


def test_a_name_that_matches_nothing_names_file_and_field(harness, tmp_path: Path) -> None:
    """A subnet name that matches nothing is an error at the manifest's file, line and JSON pointer."""
    _worker(tmp_path, "[{name: private-a}, {name: private-z}]")
    with pytest.raises(InvalidInput) as e:
        harness.plan(tmp_path)
    (problem,) = e.value.problems
    assert (problem.file, problem.pointer) == ("services/worker.yaml", f"{SUBNETS}/1")
    assert "no subnet (by Name tag) named 'private-z'" in problem.message
    assert problem.line is not None


def test_a_name_that_matches_two_things_is_ambiguous(sandbox, harness, tmp_path: Path) -> None:
    """Two subnets with the same Name tag make the reference ambiguous, and the message lists both."""
    ec2 = sandbox.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["sandbox"]}])["Vpcs"][0]["VpcId"]
    ec2.create_subnet(
        VpcId=vpc,
        CidrBlock="10.0.9.0/24",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "twin"}]}],
    )
    ec2.create_subnet(
        VpcId=vpc,
        CidrBlock="10.0.10.0/24",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "twin"}]}],
    )
    _worker(tmp_path, "[{name: twin}]")
    with pytest.raises(InvalidInput) as e:
        harness.plan(tmp_path)
    assert "2 subnet (by Name tag)s are named 'twin'" in e.value.problems[0].message


def test_plan_cli_reports_unresolved_names_without_a_traceback(sandbox, tmp_path: Path, capsys) -> None:
    """`ecs-gitops plan` exits 1 and prints FILE:LINE: /pointer: message for an unresolved name."""
    _worker(tmp_path, "[{name: nowhere}]")
    endpoint = ["--endpoint-url", sandbox.endpoint, "--region", sandbox.region]
    code = main(["plan", "--repo", str(tmp_path), *endpoint])
    err = capsys.readouterr().err
    assert code == 1
    assert "services/worker.yaml:" in err and f"{SUBNETS}/0: no subnet" in err
    assert "Traceback" not in err


def test_a_name_is_looked_up_again_after_the_ttl_at_the_same_commit(sandbox, tmp_path: Path) -> None:
    """Resolving leaves the manifests it is given as they were, so the same manifests (a tick at an
    unchanged commit reuses them) find a subnet under its name again once the answer is older than the
    ttl, after the Name tag moved to another subnet."""
    ec2 = sandbox.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["sandbox"]}])["Vpcs"][0]["VpcId"]

    def subnet(cidr: str) -> str:
        tags = [{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "moving"}]}]
        return str(ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, TagSpecifications=tags)["Subnet"]["SubnetId"])

    first = subnet("10.0.11.0/24")
    _worker(tmp_path, "[{name: moving}]")
    desired = load_desired(DirTree(tmp_path))
    now = [0.0]
    resolver = Resolver(
        Aws(region=sandbox.region, endpoint_url=sandbox.endpoint), ttl=600, clock=lambda: now[0]
    )

    def subnets(resolved) -> list[str]:  # type: ignore[no-untyped-def]
        return list(
            resolved.services["worker"].spec["networkConfiguration"]["awsvpcConfiguration"]["subnets"]
        )

    assert subnets(resolver.resolve(desired)) == [first]
    assert subnets(desired) == [{"name": "moving"}]  # the manifests given are unchanged
    ec2.delete_tags(Resources=[first], Tags=[{"Key": "Name"}])
    second = subnet("10.0.12.0/24")
    now[0] = 599.0
    assert subnets(resolver.resolve(desired)) == [first]  # remembered within the ttl
    now[0] = 601.0
    assert subnets(resolver.resolve(desired)) == [second]


def test_the_running_agent_follows_a_name_to_its_new_subnet_at_the_same_commit(
    sandbox, tmp_path: Path
) -> None:
    """A daemon ticking an unchanged commit looks the name up again once its answer is older than the
    resolver's ttl: after the Name tag moved to another subnet, the service is updated onto that subnet."""
    ec2, ecs = sandbox.client("ec2"), sandbox.client("ecs")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["sandbox"]}])["Vpcs"][0]["VpcId"]

    def subnet(cidr: str) -> str:
        tags = [{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": "following"}]}]
        return str(ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, TagSpecifications=tags)["Subnet"]["SubnetId"])

    def running_subnets() -> list[str]:
        service = ecs.describe_services(cluster="prod", services=["worker"])["services"][0]
        return list(service["networkConfiguration"]["awsvpcConfiguration"]["subnets"])

    def tick_until_settled() -> None:
        deadline = time.monotonic() + 60
        while True:
            result = agent.tick()
            assert result is not None and result.outcome not in ("invalid", "failed"), result
            if result.wake_at is None:
                return
            assert time.monotonic() < deadline, "the rollout did not settle in 60 s"
            time.sleep(0.05)

    first = subnet("10.0.13.0/24")
    root = tmp_path / "deployments"
    repo = git.Repo.init(root, initial_branch="main")
    _worker(root, "[{name: following}]")
    write(
        root,
        "cluster.yaml",
        "apiVersion: ecs-gitops/v1\nkind: Cluster\nmetadata: {name: prod}\n"
        "spec: {capacityProviders: [FARGATE, FARGATE_SPOT]}\n",
    )
    repo.git.add(A=True)
    repo.index.commit("worker by subnet name")
    sandbox.simulator.task_start_seconds = 0.1
    config = AgentConfig.default()
    config = replace(
        config, source=replace(config.source, repo=str(root)), status=replace(config.status, publisher="log")
    )
    agent = Agent(config, tmp_path / "data", Aws(region=sandbox.region, endpoint_url=sandbox.endpoint))
    now = [0.0]
    agent.reconciler.lanes.home.resolver.clock = lambda: now[0]
    tick_until_settled()
    assert running_subnets() == [first]

    ec2.delete_tags(Resources=[first], Tags=[{"Key": "Name"}])
    second = subnet("10.0.14.0/24")
    now[0] = 601.0  # past the resolver's ttl of 600 s; the commit is the same
    tick_until_settled()
    assert running_subnets() == [second]
    agent.source.close()
