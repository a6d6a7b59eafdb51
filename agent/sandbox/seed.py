"""Sandbox seed: the AWS resources manifests refer to but do not own, created by name.

A seed file (see ``manifests-example/sandbox-seed.yaml``) lists clusters, one VPC with subnets and
security groups, IAM roles and instance profiles, Auto Scaling groups, Application Load Balancers
with target groups, listeners and listener rules, and CloudWatch alarms. :func:`apply_seed` creates
them so that every name resolves the way the planner resolves names in a real account (subnets and
security groups by ``Name`` tag / group name, listener rules by ``Name`` tag, the rest by name).
It is idempotent: what already exists is looked up, never created twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from botocore.exceptions import ClientError

from agent.manifests.schemas import schemas_dir

DEFAULT_SEED_PATH = Path("manifests-example/sandbox-seed.yaml")
ClientsFactory = Callable[[str], Any]

# The seed's JSON Schema lives with the others (editors validate seed files with it too).
SEED_SCHEMA: dict[str, Any] = json.loads((schemas_dir() / "sandbox-seed.schema.json").read_text())


class SeedError(ValueError):
    """The seed file is invalid; ``problems`` holds one ``/json/pointer: message`` per defect."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid sandbox seed:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass
class SeedResult:
    """What seeding did: ``created``/``existing`` as ``"kind name"`` lines, ``ids`` by kind and name."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)

    def record(self, kind: str, name: str, ident: str, created: bool) -> str:
        self.ids.setdefault(kind, {})[name] = ident
        (self.created if created else self.existing).append(f"{kind} {name}")
        return ident

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for kind, names in self.ids.items():
            kinds[kind] = len(names)
        counts = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in kinds.items())
        return f"{counts or 'nothing'} ({len(self.created)} created, {len(self.existing)} already there)"


# --------------------------------------------------------------------------------------------------
# Loading and validation


def load_seed(path: str | Path = DEFAULT_SEED_PATH) -> dict[str, Any]:
    """Read and validate a YAML or JSON seed file; raise :class:`SeedError` naming each bad field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SeedError(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise SeedError(
            str(path), [f"not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}"]
        ) from exc
    validate_seed(data if data is not None else {}, str(path))
    return data if data is not None else {}


def validate_seed(seed: Any, source: str = "<seed>") -> None:
    """Check the schema, then that every name the seed uses is defined in it."""
    validator = jsonschema.Draft202012Validator(SEED_SCHEMA)
    problems = [
        f"/{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in sorted(validator.iter_errors(seed), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if problems:
        raise SeedError(source, problems)
    vpc = seed.get("vpc") or {}
    subnets = {s["name"] for s in vpc.get("subnets", [])}
    groups = set(vpc.get("securityGroups", []))
    needs_vpc = bool(seed.get("autoScalingGroups") or seed.get("loadBalancers"))
    if needs_vpc and not vpc:
        problems.append("/vpc: required when autoScalingGroups or loadBalancers are given")
    for i, asg in enumerate(seed.get("autoScalingGroups", [])):
        problems += _unknown(f"/autoScalingGroups/{i}/subnets", asg["subnets"], subnets, "subnet")
        if asg.get("minSize", 0) > asg.get("maxSize", asg.get("minSize", 0)):
            problems.append(f"/autoScalingGroups/{i}/minSize: greater than maxSize")
    target_groups: set[str] = set()
    for i, lb in enumerate(seed.get("loadBalancers", [])):
        problems += _unknown(f"/loadBalancers/{i}/subnets", lb["subnets"], subnets, "subnet")
        problems += _unknown(
            f"/loadBalancers/{i}/securityGroups", lb.get("securityGroups", []), groups, "security group"
        )
        own = [tg["name"] for tg in lb.get("targetGroups", [])]
        for j, name in enumerate(own):
            if name in target_groups:
                problems.append(
                    f"/loadBalancers/{i}/targetGroups/{j}/name: target group {name!r} defined twice"
                )
            target_groups.add(name)
        ports: set[int] = set()
        for j, listener in enumerate(lb.get("listeners", [])):
            where = f"/loadBalancers/{i}/listeners/{j}"
            if listener["port"] in ports:
                problems.append(f"{where}/port: two listeners on port {listener['port']}")
            ports.add(listener["port"])
            problems += _unknown(
                f"{where}/defaultTargetGroup",
                [listener["defaultTargetGroup"]],
                set(own),
                f"target group of load balancer {lb['name']!r}",
            )
            priorities: set[int] = set()
            for k, rule in enumerate(listener.get("rules", [])):
                problems += _unknown(
                    f"{where}/rules/{k}/forward",
                    [rule["forward"]],
                    set(own),
                    f"target group of load balancer {lb['name']!r}",
                )
                if rule["priority"] in priorities:
                    problems.append(f"{where}/rules/{k}/priority: priority {rule['priority']} used twice")
                priorities.add(rule["priority"])
    if problems:
        raise SeedError(source, problems)


def _unknown(pointer: str, names: list[str], known: set[str], what: str) -> list[str]:
    return [
        f"{pointer}: {name!r} is not a {what} defined in this seed" for name in names if name not in known
    ]


# --------------------------------------------------------------------------------------------------
# Applying

ECS_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["ecs-tasks.amazonaws.com", "ecs.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    ],
}
EC2_TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
SANDBOX_AMI = "ami-12c6146b"  # one of the images moto knows


def apply_seed(seed: dict[str, Any], clients_factory: ClientsFactory) -> SeedResult:
    """Create (or find) every resource of a validated seed; ``clients_factory(name)`` gives boto3 clients."""
    validate_seed(seed)
    result = SeedResult()
    clients: dict[str, Any] = {}

    def client(name: str) -> Any:
        if name not in clients:
            clients[name] = clients_factory(name)
        return clients[name]

    for cluster in seed.get("clusters", []):
        _cluster(client("ecs"), cluster if isinstance(cluster, dict) else {"name": cluster}, result)
    subnets: dict[str, str] = {}
    groups: dict[str, str] = {}
    vpc_id = ""
    if seed.get("vpc"):
        vpc_id, subnets, groups = _network(client("ec2"), seed["vpc"], result)
    for role in seed.get("roles", []):
        _role(client("iam"), role, ECS_TRUST_POLICY, result)
    for profile in seed.get("instanceProfiles", []):
        _instance_profile(client("iam"), profile, result)
    for asg in seed.get("autoScalingGroups", []):
        _auto_scaling_group(client("ec2"), client("autoscaling"), asg, subnets, result)
    for lb in seed.get("loadBalancers", []):
        _load_balancer(client("elbv2"), lb, vpc_id, subnets, groups, result)
    for alarm in seed.get("alarms", []):
        _alarm(client("cloudwatch"), alarm if isinstance(alarm, dict) else {"name": alarm}, result)
    return result


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _cluster(ecs: Any, spec: dict[str, Any], result: SeedResult) -> None:
    found = [c for c in ecs.describe_clusters(clusters=[spec["name"]])["clusters"] if c["status"] == "ACTIVE"]
    if found:
        result.record("cluster", spec["name"], found[0]["clusterArn"], created=False)
        return
    kwargs: dict[str, Any] = {"clusterName": spec["name"]}
    if spec.get("capacityProviders"):
        kwargs["capacityProviders"] = spec["capacityProviders"]
    if spec.get("settings"):
        kwargs["settings"] = spec["settings"]
    if spec.get("tags"):
        kwargs["tags"] = [{"key": k, "value": v} for k, v in spec["tags"].items()]
    arn = ecs.create_cluster(**kwargs)["cluster"]["clusterArn"]
    result.record("cluster", spec["name"], arn, created=True)


def _name_tag(name: str, resource_type: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": "Name", "Value": name}]}]


def _network(
    ec2: Any, spec: dict[str, Any], result: SeedResult
) -> tuple[str, dict[str, str], dict[str, str]]:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [spec["name"]]}])["Vpcs"]
    if vpcs:
        vpc_id = result.record("vpc", spec["name"], vpcs[0]["VpcId"], created=False)
    else:
        vpc = ec2.create_vpc(CidrBlock=spec["cidr"], TagSpecifications=_name_tag(spec["name"], "vpc"))["Vpc"]
        vpc_id = result.record("vpc", spec["name"], vpc["VpcId"], created=True)
    in_vpc = {"Name": "vpc-id", "Values": [vpc_id]}
    subnets: dict[str, str] = {}
    for subnet in spec.get("subnets", []):
        found = ec2.describe_subnets(Filters=[in_vpc, {"Name": "tag:Name", "Values": [subnet["name"]]}])[
            "Subnets"
        ]
        if found:
            subnets[subnet["name"]] = result.record(
                "subnet", subnet["name"], found[0]["SubnetId"], created=False
            )
            continue
        kwargs: dict[str, Any] = {
            "VpcId": vpc_id,
            "CidrBlock": subnet["cidr"],
            "TagSpecifications": _name_tag(subnet["name"], "subnet"),
        }
        if subnet.get("availabilityZone"):
            kwargs["AvailabilityZone"] = subnet["availabilityZone"]
        created = ec2.create_subnet(**kwargs)["Subnet"]["SubnetId"]
        subnets[subnet["name"]] = result.record("subnet", subnet["name"], created, created=True)
    groups: dict[str, str] = {}
    for name in spec.get("securityGroups", []):
        found = ec2.describe_security_groups(Filters=[in_vpc, {"Name": "group-name", "Values": [name]}])
        if found["SecurityGroups"]:
            groups[name] = result.record(
                "security group", name, found["SecurityGroups"][0]["GroupId"], created=False
            )
            continue
        group_id = ec2.create_security_group(
            GroupName=name,
            Description=f"sandbox security group {name}",
            VpcId=vpc_id,
            TagSpecifications=_name_tag(name, "security-group"),
        )["GroupId"]
        groups[name] = result.record("security group", name, group_id, created=True)
    return vpc_id, subnets, groups


def _role(iam: Any, name: str, trust: dict[str, Any], result: SeedResult) -> str:
    try:
        return result.record("role", name, iam.get_role(RoleName=name)["Role"]["Arn"], created=False)
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
    arn = iam.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(trust),
        Description="created by the ecs-gitops sandbox seed",
    )["Role"]["Arn"]
    return result.record("role", name, arn, created=True)


def _instance_profile(iam: Any, name: str, result: SeedResult) -> None:
    try:
        arn = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"]
        result.record("instance profile", name, arn, created=False)
        return
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
    # The profile carries an EC2 role of the same name, as the console's ecsInstanceRole does.
    try:
        iam.get_role(RoleName=name)
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EC2_TRUST_POLICY))
    arn = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    result.record("instance profile", name, arn, created=True)


def _auto_scaling_group(
    ec2: Any, autoscaling: Any, spec: dict[str, Any], subnets: dict[str, str], result: SeedResult
) -> None:
    name = spec["name"]
    found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    if found:
        result.record("auto scaling group", name, found[0]["AutoScalingGroupARN"], created=False)
        return
    template = f"{name}-template"
    try:
        ec2.describe_launch_templates(LaunchTemplateNames=[template])
    except ClientError as exc:
        if "NotFound" not in _code(exc) and "Malformed" not in _code(exc):
            raise
        ec2.create_launch_template(
            LaunchTemplateName=template,
            LaunchTemplateData={"ImageId": SANDBOX_AMI, "InstanceType": "t3.medium"},
        )
    min_size = spec.get("minSize", 0)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
        MinSize=min_size,
        MaxSize=spec.get("maxSize", max(min_size, 1)),
        DesiredCapacity=spec.get("desiredCapacity", min_size),
        VPCZoneIdentifier=",".join(subnets[s] for s in spec["subnets"]),
    )
    arn = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0][
        "AutoScalingGroupARN"
    ]
    result.record("auto scaling group", name, arn, created=True)


def _load_balancer(
    elbv2: Any,
    spec: dict[str, Any],
    vpc_id: str,
    subnets: dict[str, str],
    groups: dict[str, str],
    result: SeedResult,
) -> None:
    name = spec["name"]
    try:
        lb_arn = elbv2.describe_load_balancers(Names=[name])["LoadBalancers"][0]["LoadBalancerArn"]
        result.record("load balancer", name, lb_arn, created=False)
    except ClientError as exc:
        if _code(exc) != "LoadBalancerNotFound":
            raise
        lb_arn = elbv2.create_load_balancer(
            Name=name,
            Type="application",
            Scheme=spec.get("scheme", "internal"),
            Subnets=[subnets[s] for s in spec["subnets"]],
            SecurityGroups=[groups[g] for g in spec.get("securityGroups", [])],
            Tags=[{"Key": "Name", "Value": name}],
        )["LoadBalancers"][0]["LoadBalancerArn"]
        result.record("load balancer", name, lb_arn, created=True)
    target_groups: dict[str, str] = {}
    for tg in spec.get("targetGroups", []):
        try:
            arn = elbv2.describe_target_groups(Names=[tg["name"]])["TargetGroups"][0]["TargetGroupArn"]
            target_groups[tg["name"]] = result.record("target group", tg["name"], arn, created=False)
            continue
        except ClientError as exc:
            if _code(exc) != "TargetGroupNotFound":
                raise
        arn = elbv2.create_target_group(
            Name=tg["name"],
            Protocol=tg.get("protocol", "HTTP"),
            Port=tg["port"],
            VpcId=vpc_id,
            TargetType="ip",
            HealthCheckPath=tg.get("healthCheckPath", "/"),
            Tags=[{"Key": "Name", "Value": tg["name"]}],
        )["TargetGroups"][0]["TargetGroupArn"]
        target_groups[tg["name"]] = result.record("target group", tg["name"], arn, created=True)
    listeners = {
        item["Port"]: item["ListenerArn"]
        for item in elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
    }
    for listener in spec.get("listeners", []):
        label = f"{name}:{listener['port']}"
        if listener["port"] in listeners:
            listener_arn = result.record("listener", label, listeners[listener["port"]], created=False)
        else:
            listener_arn = elbv2.create_listener(
                LoadBalancerArn=lb_arn,
                Protocol=listener.get("protocol", "HTTP"),
                Port=listener["port"],
                DefaultActions=[_forward(target_groups[listener["defaultTargetGroup"]])],
            )["Listeners"][0]["ListenerArn"]
            result.record("listener", label, listener_arn, created=True)
        existing = _rules_by_name(elbv2, listener_arn)
        for rule in listener.get("rules", []):
            if rule["name"] in existing:
                result.record("listener rule", rule["name"], existing[rule["name"]], created=False)
                continue
            arn = elbv2.create_rule(
                ListenerArn=listener_arn,
                Priority=rule["priority"],
                Conditions=[
                    {"Field": "path-pattern", "PathPatternConfig": {"Values": [rule["pathPattern"]]}}
                ],
                Actions=[_forward(target_groups[rule["forward"]])],
                Tags=[{"Key": "Name", "Value": rule["name"]}],
            )["Rules"][0]["RuleArn"]
            result.record("listener rule", rule["name"], arn, created=True)


def _forward(target_group_arn: str) -> dict[str, Any]:
    return {"Type": "forward", "TargetGroupArn": target_group_arn}


def _rules_by_name(elbv2: Any, listener_arn: str) -> dict[str, str]:
    arns = [
        r["RuleArn"]
        for r in elbv2.describe_rules(ListenerArn=listener_arn)["Rules"]
        if not r.get("IsDefault")
    ]
    names: dict[str, str] = {}
    for start in range(0, len(arns), 20):
        for description in elbv2.describe_tags(ResourceArns=arns[start : start + 20])["TagDescriptions"]:
            for tag in description.get("Tags", []):
                if tag["Key"] == "Name":
                    names[tag["Value"]] = description["ResourceArn"]
    return names


def _alarm(cloudwatch: Any, spec: dict[str, Any], result: SeedResult) -> None:
    name = spec["name"]
    found = cloudwatch.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    if found:
        result.record("alarm", name, found[0]["AlarmArn"], created=False)
        return
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        AlarmDescription="created by the ecs-gitops sandbox seed",
        Namespace=spec.get("namespace", "AWS/ApplicationELB"),
        MetricName=spec.get("metricName", "HTTPCode_Target_5XX_Count"),
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=float(spec.get("threshold", 1)),
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="notBreaching",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=spec.get("state", "OK"), StateReason="sandbox seed")
    arn = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]
    result.record("alarm", name, arn, created=True)
