"""References by name resolve at plan time, with a clear error when nothing or several things match."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.errors import InvalidInput
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
