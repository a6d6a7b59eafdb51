"""Contract tests for the sandbox: over HTTP, with real boto3 clients, it answers like ECS does."""

from __future__ import annotations

import copy
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from agent.manifests.loading import task_definition_body
from agent.sandbox.harness import CORPUS as CORPUS_DIR
from agent.sandbox.overlay import task_cpu_units, task_memory_mib
from agent.sandbox.seed import SeedError, load_seed
from agent.sandbox.server import Sandbox, SandboxError

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_FILE = REPO_ROOT / "manifests-example" / "sandbox-seed.yaml"
CORPUS = sorted(CORPUS_DIR.glob("*.json"))
assert CORPUS, f"the shared task-definition corpus is missing at {CORPUS_DIR}"


# -- lifecycle (these run before the module's shared `sandbox` fixture is first used) -------------


def test_each_sandbox_starts_empty() -> None:
    """State made in one sandbox is gone in the next one started in the same process."""
    with Sandbox() as first:
        first.client("ecs").create_cluster(clusterName="leftover")
        assert first.client("ecs").list_clusters()["clusterArns"]
    with Sandbox() as second:
        assert second.client("ecs").list_clusters()["clusterArns"] == []


def test_busy_port_is_a_clear_error() -> None:
    """Starting on a port another program holds raises SandboxError instead of exiting the process."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        with pytest.raises(SandboxError, match="cannot listen on"):
            Sandbox(port=holder.getsockname()[1]).start()
    with Sandbox() as sandbox:  # the failed start left nothing behind
        assert sandbox.endpoint.startswith("http://127.0.0.1:")


def test_second_running_sandbox_is_refused(sandbox: Sandbox) -> None:
    """Only one sandbox may run per process, and the error says why."""
    with pytest.raises(SandboxError, match="already running"):
        Sandbox().start()


# -- helpers ---------------------------------------------------------------------------------------


def _names(sandbox: Sandbox) -> dict[str, Any]:
    """Resolve the seed's names the way the planner does in a real account."""
    ec2, elbv2, iam = sandbox.client("ec2"), sandbox.client("elbv2"), sandbox.client("iam")
    subnets = {
        tag["Value"]: s["SubnetId"]
        for s in ec2.describe_subnets()["Subnets"]
        for tag in s.get("Tags", [])
        if tag["Key"] == "Name"
    }
    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    tgs = {t["TargetGroupName"]: t["TargetGroupArn"] for t in elbv2.describe_target_groups()["TargetGroups"]}
    rules: dict[str, str] = {}
    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        for listener in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            arns = [
                r["RuleArn"]
                for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
                if not r["IsDefault"]
            ]
            for desc in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]:
                for tag in desc["Tags"]:
                    if tag["Key"] == "Name":
                        rules[tag["Value"]] = desc["ResourceArn"]
    roles = {r["RoleName"]: r["Arn"] for r in iam.list_roles()["Roles"]}
    return {"subnet": subnets, "sg": groups, "tg": tgs, "rule": rules, "role": roles}


def _cluster(sandbox: Sandbox, name: str, providers: list[str] | None = None) -> None:
    sandbox.client("ecs").create_cluster(
        clusterName=name, capacityProviders=providers or ["FARGATE", "FARGATE_SPOT"]
    )


def _taskdef(sandbox: Sandbox, family: str) -> str:
    return sandbox.client("ecs").register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "app", "image": "nginx", "portMappings": [{"containerPort": 8080}]}],
    )["taskDefinition"]["taskDefinitionArn"]


# -- services --------------------------------------------------------------------------------------


def test_service_fields_round_trip_like_ecs(sandbox: Sandbox) -> None:
    """A service created with a capacity-provider strategy, deployment settings, network and blue/green
    load balancer is described back with every field, and without launchType, as ECS does."""
    names = _names(sandbox)
    ecs = sandbox.client("ecs")
    _cluster(sandbox, "svc-rt")
    arn = _taskdef(sandbox, "svc-rt")
    wanted: dict[str, Any] = {
        "capacityProviderStrategy": [
            {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
            {"capacityProvider": "FARGATE_SPOT", "weight": 3, "base": 0},
        ],
        "deploymentConfiguration": {
            "maximumPercent": 150,
            "minimumHealthyPercent": 50,
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "alarms": {"alarmNames": ["web-5xx"], "enable": True, "rollback": True},
        },
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": [names["subnet"]["private-a"], names["subnet"]["private-b"]],
                "securityGroups": [names["sg"]["web"]],
                "assignPublicIp": "DISABLED",
            }
        },
        "loadBalancers": [
            {
                "targetGroupArn": names["tg"]["web-blue"],
                "containerName": "app",
                "containerPort": 8080,
                "advancedConfiguration": {
                    "alternateTargetGroupArn": names["tg"]["web-green"],
                    "productionListenerRule": names["rule"]["web-prod"],
                    "testListenerRule": names["rule"]["web-test"],
                    "roleArn": names["role"]["ecsInfrastructureRole"],
                },
            }
        ],
        "platformVersion": "1.4.0",
        "healthCheckGracePeriodSeconds": 30,
        "enableExecuteCommand": True,
        "enableECSManagedTags": True,
        "propagateTags": "SERVICE",
        "placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}],
    }
    created = ecs.create_service(
        cluster="svc-rt",
        serviceName="web",
        taskDefinition="svc-rt",
        desiredCount=2,
        tags=[{"key": "team", "value": "storefront"}],
        **copy.deepcopy(wanted),
    )["service"]
    described = ecs.describe_services(cluster="svc-rt", services=["web"], include=["TAGS"])["services"][0]
    for service in (created, described):
        for field, value in wanted.items():
            assert service[field] == value, field
        assert "launchType" not in service
        assert service["taskDefinition"] == arn
        assert service["deploymentController"] == {"type": "ECS"}
        assert service["platformFamily"] == "Linux"
        assert service["createdAt"]
        deployment = service["deployments"][0]
        assert deployment["capacityProviderStrategy"] == wanted["capacityProviderStrategy"]
        assert "launchType" not in deployment
    assert described["tags"] == [{"key": "team", "value": "storefront"}]


def test_service_defaults_are_filled_like_ecs(sandbox: Sandbox) -> None:
    """A minimal Fargate service reports ECS's defaults: LATEST, the default deployment configuration."""
    names = _names(sandbox)
    ecs = sandbox.client("ecs")
    _cluster(sandbox, "svc-defaults")
    _taskdef(sandbox, "svc-defaults")
    ecs.create_service(
        cluster="svc-defaults",
        serviceName="api",
        taskDefinition="svc-defaults",
        desiredCount=1,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [names["subnet"]["private-a"]],
                "securityGroups": [names["sg"]["api"]],
            }
        },
    )
    service = ecs.describe_services(cluster="svc-defaults", services=["api"])["services"][0]
    assert service["launchType"] == "FARGATE"
    assert "capacityProviderStrategy" not in service
    assert service["platformVersion"] == "LATEST"
    assert service["deploymentConfiguration"] == {
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    }
    assert service["deploymentController"] == {"type": "ECS"}
    assert service["enableExecuteCommand"] is False
    assert "tags" not in service


def test_cluster_default_strategy_applies_when_service_names_none(sandbox: Sandbox) -> None:
    """A service given neither launchType nor a strategy takes the cluster's default strategy, as in ECS."""
    ecs = sandbox.client("ecs")
    ecs.create_cluster(
        clusterName="svc-default-cps",
        capacityProviders=["FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
    )
    _taskdef(sandbox, "svc-default-cps")
    service = ecs.create_service(
        cluster="svc-default-cps", serviceName="s", taskDefinition="svc-default-cps"
    )["service"]
    assert service["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}
    ]
    assert "launchType" not in service


def test_update_service_keeps_fields_and_stores_the_arn(sandbox: Sandbox) -> None:
    """UpdateService changes only what it is given, and stores `family:rev` as the full ARN like ECS."""
    ecs = sandbox.client("ecs")
    _cluster(sandbox, "svc-update")
    _taskdef(sandbox, "svc-update")
    second = _taskdef(sandbox, "svc-update")
    ecs.create_service(
        cluster="svc-update",
        serviceName="worker",
        taskDefinition="svc-update:1",
        capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
        healthCheckGracePeriodSeconds=10,
    )
    updated = ecs.update_service(
        cluster="svc-update",
        service="worker",
        taskDefinition="svc-update:2",
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}},
    )["service"]
    described = ecs.describe_services(cluster="svc-update", services=["worker"])["services"][0]
    for service in (updated, described):
        assert service["taskDefinition"] == second
        assert service["capacityProviderStrategy"] == [
            {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}
        ]
        assert service["healthCheckGracePeriodSeconds"] == 10
        assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {
            "enable": True,
            "rollback": True,
        }
        assert service["deploymentConfiguration"]["maximumPercent"] == 200
        assert "launchType" not in service


def test_invalid_capacity_strategies_are_rejected(sandbox: Sandbox) -> None:
    """ECS refuses a strategy naming a provider the cluster lacks, and launchType together with a strategy."""
    ecs = sandbox.client("ecs")
    _cluster(sandbox, "svc-invalid", ["FARGATE"])
    _taskdef(sandbox, "svc-invalid")
    with pytest.raises(ClientError, match="not associated with the cluster") as err:
        ecs.create_service(
            cluster="svc-invalid",
            serviceName="a",
            taskDefinition="svc-invalid",
            capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        )
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError, match="both a launch type and capacity provider strategy"):
        ecs.create_service(
            cluster="svc-invalid",
            serviceName="b",
            taskDefinition="svc-invalid",
            launchType="FARGATE",
            capacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
        )


# -- capacity providers and clusters ----------------------------------------------------------------


def _managed_instances(names: dict[str, Any], sg: str = "workers") -> dict[str, Any]:
    return {
        "infrastructureRoleArn": names["role"]["ecsInfrastructureRole"],
        "instanceLaunchTemplate": {
            "ec2InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/ecsInstanceProfile",
            "networkConfiguration": {
                "subnets": [names["subnet"]["private-a"]],
                "securityGroups": [names["sg"][sg]],
            },
            "instanceRequirements": {
                "vCpuCount": {"min": 2, "max": 8},
                "memoryMiB": {"min": 4096, "max": 16384},
            },
            "monitoring": "BASIC",
        },
    }


def test_managed_instances_capacity_provider_lifecycle(sandbox: Sandbox) -> None:
    """A Managed Instances capacity provider is created, described, updated and deleted in AWS's shape."""
    names = _names(sandbox)
    ecs = sandbox.client("ecs")
    _cluster(sandbox, "cp-mi")
    spec = _managed_instances(names)
    created = ecs.create_capacity_provider(
        name="cp-mi-managed",
        cluster="cp-mi",
        managedInstancesProvider=spec,
        tags=[{"key": "team", "value": "platform"}],
    )["capacityProvider"]
    assert created["type"] == "MANAGED_INSTANCES"
    assert created["cluster"] == "cp-mi"
    assert created["status"] == "ACTIVE"
    assert created["capacityProviderArn"].endswith(":capacity-provider/cp-mi-managed")
    assert created["managedInstancesProvider"] == spec
    ecs.put_cluster_capacity_providers(
        cluster="cp-mi", capacityProviders=["FARGATE", "cp-mi-managed"], defaultCapacityProviderStrategy=[]
    )
    listed = ecs.describe_capacity_providers(cluster="cp-mi", include=["TAGS"])["capacityProviders"]
    assert {p["name"] for p in listed} == {"FARGATE", "cp-mi-managed"}
    mine = next(p for p in listed if p["name"] == "cp-mi-managed")
    assert mine["tags"] == [{"key": "team", "value": "platform"}]
    by_name = ecs.describe_capacity_providers(capacityProviders=["cp-mi-managed"], cluster="cp-mi")[
        "capacityProviders"
    ]
    assert "tags" not in by_name[0]

    change = {
        "infrastructureRoleArn": names["role"]["api-task"],
        "instanceLaunchTemplate": {"monitoring": "DETAILED"},
    }
    updated = ecs.update_capacity_provider(
        name="cp-mi-managed", cluster="cp-mi", managedInstancesProvider=change
    )["capacityProvider"]
    assert updated["managedInstancesProvider"]["infrastructureRoleArn"] == names["role"]["api-task"]
    template = updated["managedInstancesProvider"]["instanceLaunchTemplate"]
    assert template["monitoring"] == "DETAILED"
    assert template["networkConfiguration"] == spec["instanceLaunchTemplate"]["networkConfiguration"]
    again = ecs.describe_capacity_providers(capacityProviders=["cp-mi-managed"], cluster="cp-mi")[
        "capacityProviders"
    ]
    assert again[0]["managedInstancesProvider"] == updated["managedInstancesProvider"]

    deleted = ecs.delete_capacity_provider(capacityProvider="cp-mi-managed", cluster="cp-mi")[
        "capacityProvider"
    ]
    assert deleted["status"] == "INACTIVE"
    gone = ecs.describe_capacity_providers(capacityProviders=["cp-mi-managed"], cluster="cp-mi")
    assert gone["capacityProviders"] == []


def test_auto_scaling_group_capacity_provider_round_trips(sandbox: Sandbox) -> None:
    """An ASG capacity provider keeps managedDraining across create and update, and lists with FARGATE."""
    ecs = sandbox.client("ecs")
    asg = sandbox.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["prod-ecs-asg"])
    asg_arn = asg["AutoScalingGroups"][0]["AutoScalingGroupARN"]
    provider = {
        "autoScalingGroupArn": asg_arn,
        "managedScaling": {
            "status": "ENABLED",
            "targetCapacity": 90,
            "minimumScalingStepSize": 1,
            "maximumScalingStepSize": 10,
            "instanceWarmupPeriod": 300,
        },
        "managedTerminationProtection": "DISABLED",
        "managedDraining": "ENABLED",
    }
    created = ecs.create_capacity_provider(name="cp-asg", autoScalingGroupProvider=provider)[
        "capacityProvider"
    ]
    assert created["autoScalingGroupProvider"] == provider
    assert created["type"] == "EC2_AUTOSCALING"
    ecs.update_capacity_provider(name="cp-asg", autoScalingGroupProvider={"managedDraining": "DISABLED"})
    described = ecs.describe_capacity_providers(capacityProviders=["cp-asg"])["capacityProviders"][0]
    assert described["autoScalingGroupProvider"] == {**provider, "managedDraining": "DISABLED"}
    everything = ecs.describe_capacity_providers(maxResults=10)["capacityProviders"]
    assert {"FARGATE", "FARGATE_SPOT", "cp-asg"} <= {p["name"] for p in everything}


def test_cluster_settings_and_providers_round_trip(sandbox: Sandbox) -> None:
    """Cluster settings, tags, providers and default strategy round-trip, including UpdateClusterSettings."""
    ecs = sandbox.client("ecs")
    ecs.create_cluster(
        clusterName="cl-rt",
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1, "base": 1}],
        settings=[{"name": "containerInsights", "value": "enabled"}],
        tags=[{"key": "team", "value": "platform"}],
    )
    cluster = ecs.describe_clusters(clusters=["cl-rt"], include=["SETTINGS", "TAGS", "CONFIGURATIONS"])[
        "clusters"
    ][0]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    assert cluster["tags"] == [{"key": "team", "value": "platform"}]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    assert cluster["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE", "weight": 1, "base": 1}
    ]
    plain = ecs.describe_clusters(clusters=["cl-rt"])["clusters"][0]
    assert "settings" not in plain
    assert "tags" not in plain

    ecs.put_cluster_capacity_providers(
        cluster="cl-rt",
        capacityProviders=["FARGATE"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 2}],
    )
    ecs.update_cluster_settings(
        cluster="cl-rt", settings=[{"name": "containerInsights", "value": "disabled"}]
    )
    cluster = ecs.describe_clusters(clusters=["cl-rt"], include=["SETTINGS"])["clusters"][0]
    assert cluster["capacityProviders"] == ["FARGATE"]
    assert cluster["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE", "weight": 2, "base": 0}
    ]
    assert cluster["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    with pytest.raises(ClientError, match="does not exist"):
        ecs.put_cluster_capacity_providers(
            cluster="cl-rt", capacityProviders=["no-such-provider"], defaultCapacityProviderStrategy=[]
        )


# -- task definitions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"), [("0.25 vCPU", "256"), ("1 vCPU", "1024"), ("2vcpu", "2048"), ("256", "256")]
)
def test_task_cpu_is_stored_in_units(given: str, stored: str) -> None:
    """Task cpu is stored the way ECS stores it on register."""
    assert task_cpu_units(given) == stored


@pytest.mark.parametrize(
    ("given", "stored"), [("1 GB", "1024"), ("0.5GB", "512"), ("512 MB", "512"), ("2048", "2048")]
)
def test_task_memory_is_stored_in_mib(given: str, stored: str) -> None:
    """Task memory is stored the way ECS stores it on register."""
    assert task_memory_mib(given) == stored


def _subset(wanted: Any, got: Any, path: str = "") -> list[str]:
    if isinstance(wanted, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r}"]
        return [
            p
            for k, v in wanted.items()
            for p in (_subset(v, got[k], f"{path}/{k}") if k in got else [f"{path}/{k}: missing"])
        ]
    if isinstance(wanted, list):
        if not isinstance(got, list) or len(got) != len(wanted):
            return [f"{path}: {got!r}"]
        return [
            p for i, (w, g) in enumerate(zip(wanted, got, strict=True)) for p in _subset(w, g, f"{path}/{i}")
        ]
    return [] if wanted == got else [f"{path}: {wanted!r} -> {got!r}"]


@pytest.mark.parametrize(
    "path",
    [*CORPUS, *sorted((REPO_ROOT / "manifests-example" / "taskdefs").glob("*.json"))],
    ids=lambda p: p.name[-60:],
)
def test_task_definitions_round_trip(sandbox: Sandbox, path: Path) -> None:
    """Every field of a real task definition comes back from register and describe(include=TAGS)."""
    document = json.loads(path.read_text())
    params = task_definition_body(document)[0]  # as the agent reads it: read-only fields and $schema dropped
    tags = params.get("tags")
    ecs = sandbox.client("ecs")
    registered = ecs.register_task_definition(**copy.deepcopy(params))["taskDefinition"]
    out = ecs.describe_task_definition(taskDefinition=registered["taskDefinitionArn"], include=["TAGS"])
    wanted = {k: v for k, v in params.items() if k != "tags"}
    for key, convert in (("cpu", task_cpu_units), ("memory", task_memory_mib)):
        if key in wanted:
            wanted[key] = convert(wanted[key])
    for got in (registered, out["taskDefinition"]):
        assert _subset(wanted, got) == []
        assert got["registeredAt"]
    assert out.get("tags", []) == (tags or [])


def test_web_task_definition_units_are_converted(sandbox: Sandbox) -> None:
    """manifests-example's `"0.5 vCPU"` / `"1 GB"` are described back as "512" / "1024", like ECS."""
    params = task_definition_body(
        json.loads((REPO_ROOT / "manifests-example" / "taskdefs" / "web.json").read_text())
    )
    out = sandbox.client("ecs").register_task_definition(**params[0])["taskDefinition"]
    assert (out["cpu"], out["memory"]) == ("512", "1024")


def test_list_task_definitions_sorts_and_pages(sandbox: Sandbox) -> None:
    """ListTaskDefinitions filters by family, honours sort=DESC and pages with nextToken, like ECS."""
    ecs = sandbox.client("ecs")
    for _ in range(3):
        _taskdef(sandbox, "td-list")
    _taskdef(sandbox, "td-listx")
    arns = ecs.list_task_definitions(familyPrefix="td-list", sort="DESC")["taskDefinitionArns"]
    assert [a.rsplit("/", 1)[1] for a in arns] == ["td-list:3", "td-list:2", "td-list:1"]
    first = ecs.list_task_definitions(familyPrefix="td-list", maxResults=2)
    assert [a.rsplit(":", 1)[1] for a in first["taskDefinitionArns"]] == ["1", "2"]
    rest = ecs.list_task_definitions(familyPrefix="td-list", maxResults=2, nextToken=first["nextToken"])
    assert [a.rsplit(":", 1)[1] for a in rest["taskDefinitionArns"]] == ["3"]
    assert "nextToken" not in rest


# -- seed ------------------------------------------------------------------------------------------


def test_seed_is_idempotent(sandbox: Sandbox) -> None:
    """Seeding again creates nothing and finds every resource the first seeding made."""
    result = sandbox.seed(SEED_FILE)
    assert result.created == []
    assert len(result.existing) == 28  # the seed's resources, the agent's execution role included


def test_every_seed_name_resolves(sandbox: Sandbox) -> None:
    """Every name in manifests-example/sandbox-seed.yaml resolves exactly once, as the planner resolves it."""
    seed = yaml.safe_load(SEED_FILE.read_text())
    names = _names(sandbox)
    assert {s["name"] for s in seed["vpc"]["subnets"]} <= set(names["subnet"])
    assert set(seed["vpc"]["securityGroups"]) <= set(names["sg"])
    assert set(seed["roles"]) <= set(names["role"])
    lbs = seed["loadBalancers"]
    assert {tg["name"] for lb in lbs for tg in lb["targetGroups"]} <= set(names["tg"])
    assert {r["name"] for lb in lbs for li in lb["listeners"] for r in li["rules"]} == set(names["rule"])
    for group in seed["vpc"]["securityGroups"]:
        found = sandbox.client("ec2").describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [group]}]
        )["SecurityGroups"]
        assert len(found) == 1
        assert {"Key": "Name", "Value": group} in found[0]["Tags"]
    for tg in ("web-blue", "api-green"):
        found = sandbox.client("elbv2").describe_target_groups(Names=[tg])["TargetGroups"]
        assert found[0]["TargetType"] == "ip"
    alarms = sandbox.client("cloudwatch").describe_alarms(AlarmNames=seed["alarms"])["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in alarms) == sorted(seed["alarms"])
    assert {a["StateValue"] for a in alarms} == {"OK"}
    profile = sandbox.client("iam").get_instance_profile(InstanceProfileName="ecsInstanceProfile")
    assert profile["InstanceProfile"]["Roles"]
    asgs = sandbox.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["prod-ecs-asg"])
    assert len(asgs["AutoScalingGroups"]) == 1
    prod_rule = sandbox.client("elbv2").describe_rules(RuleArns=[names["rule"]["web-prod"]])["Rules"][0]
    assert prod_rule["Actions"][0]["TargetGroupArn"] == names["tg"]["web-blue"]


def test_invalid_seed_names_the_field(tmp_path: Path) -> None:
    """A bad seed file is refused with one `/json/pointer: message` per defect."""
    seed = yaml.safe_load(SEED_FILE.read_text())
    seed["loadBalancers"][0]["listeners"][0]["rules"][1]["forward"] = "api-bleu"
    seed["vpc"]["subnets"][0]["cidr"] = "ten.0.1.0/24"
    bad = tmp_path / "seed.yaml"
    bad.write_text(yaml.safe_dump(seed))
    with pytest.raises(SeedError) as err:
        load_seed(bad)
    assert err.value.problems == [f"/vpc/subnets/0/cidr: 'ten.0.1.0/24' does not match {seed_pattern()!r}"]
    seed["vpc"]["subnets"][0]["cidr"] = "10.0.1.0/24"
    bad.write_text(yaml.safe_dump(seed))
    with pytest.raises(SeedError, match="/loadBalancers/0/listeners/0/rules/1/forward: 'api-bleu'"):
        load_seed(bad)


def seed_pattern() -> str:
    from agent.sandbox.seed import SEED_SCHEMA

    return SEED_SCHEMA["properties"]["vpc"]["properties"]["subnets"]["items"]["properties"]["cidr"]["pattern"]


# -- `sandbox up` ----------------------------------------------------------------------------------


def _lines(stream: Any) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _next_line(lines: queue.Queue[str], deadline: float) -> str:
    try:
        return lines.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        pytest.fail("`sandbox up` printed nothing before the deadline")


@pytest.mark.slow
def test_sandbox_up_prints_endpoint_first_and_stops_on_sigint() -> None:
    """`sandbox up` prints AWS_ENDPOINT_URL= first, serves the seeded resources, and exits 0 on SIGINT."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.sandbox.cli", "up", "--port", "0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _lines(proc.stdout)
        deadline = time.monotonic() + 30
        first = _next_line(lines, deadline)
        assert first.startswith("AWS_ENDPOINT_URL=http://127.0.0.1:")
        endpoint = first.split("=", 1)[1]
        while "running" not in _next_line(lines, deadline):
            pass
        elbv2 = boto3.client(
            "elbv2",
            endpoint_url=endpoint,
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        assert elbv2.describe_target_groups(Names=["web-blue"])["TargetGroups"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_the_dispatcher_names_the_backend_moto_names_and_lists_moto_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sandbox's host-to-backend dispatcher answers as moto's does, listing moto's folder once a host."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from agent.sandbox.server import _Dispatcher

    hosts = [
        "ecs.eu-west-1.amazonaws.com",
        "sts.amazonaws.com",
        "elasticloadbalancing.us-east-1.amazonaws.com",
        "monitoring.eu-west-1.amazonaws.com",
        "ecs",
        "moto_api",
        "example.invalid",
    ]
    moto_own = DomainDispatcherApplication(create_backend_app)
    expected = {host: moto_own.get_backend_for_host(host) for host in hosts}
    listed: list[int] = []
    real = backends.list_of_moto_modules
    monkeypatch.setattr(backends, "list_of_moto_modules", lambda: listed.append(1) or real())
    dispatcher = _Dispatcher(create_backend_app)
    for _ in range(3):
        assert {host: dispatcher.get_backend_for_host(host) for host in hosts} == expected
    assert expected["ecs.eu-west-1.amazonaws.com"] == "ecs" and expected["example.invalid"] is None
    assert len(listed) <= len(hosts) + 2  # once per host, again only for the host no backend names
