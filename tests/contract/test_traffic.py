"""agent/aws/traffic.py against the sandbox over HTTP: task sets as the Observer sees them, weighted
listener rules written and read back, alarm states, and the calls it takes to read many services."""

from __future__ import annotations

import math
from typing import Any

import pytest

from agent.aws.clients import Aws
from agent.aws.errors import AwsPermanentError
from agent.aws.executing import Executor
from agent.aws.observing import Observer
from agent.aws.pacing import Pacer
from agent.aws.traffic import (
    RULES_PER_CALL,
    TrafficObserver,
    TrafficWriter,
    forward_weights,
    task_set_request,
    task_sets_of,
)
from agent.manifests.model import Desired, Manifest, Source
from agent.plan.model import NO_CHANGE, Change, TaskDefinitionRef
from agent.plan.taskdefs import HASH_TAG

CLUSTER, SERVICE = "traffic", "shop"
T = 2.0  # sim_sandbox's task_start_seconds


def _setup(sandbox: Any) -> dict[str, Any]:
    """A cluster, a Fargate task definition and an EXTERNAL service on the seeded storefront balancer."""
    ecs, elb, ec2 = sandbox.client("ecs"), sandbox.client("elbv2"), sandbox.client("ec2")
    groups = {g["TargetGroupName"]: g["TargetGroupArn"] for g in elb.describe_target_groups()["TargetGroups"]}
    rules: dict[str, str] = {}
    for lb in elb.describe_load_balancers()["LoadBalancers"]:
        for listener in elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            for rule in elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]:
                if not rule["IsDefault"]:
                    tags = elb.describe_tags(ResourceArns=[rule["RuleArn"]])["TagDescriptions"][0]["Tags"]
                    name = next(t["Value"] for t in tags if t["Key"] == "Name")
                    rules[name] = rule["RuleArn"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["private-a"]}])["Subnets"][0]
    ecs.create_cluster(clusterName=CLUSTER)
    td = ecs.register_task_definition(
        family="shop",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "shop", "image": "repo/shop:1", "portMappings": [{"containerPort": 8080}]}
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    td2 = ecs.register_task_definition(
        family="shop",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "shop", "image": "repo/shop:2", "portMappings": [{"containerPort": 8080}]}
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=CLUSTER, serviceName=SERVICE, desiredCount=2, deploymentController={"type": "EXTERNAL"}
    )
    task_set = {
        "launchType": "FARGATE",
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": [subnet["SubnetId"]]}},
        "loadBalancers": [
            {"targetGroupArn": groups["web-blue"], "containerName": "shop", "containerPort": 8080}
        ],
        "taskDefinition": TaskDefinitionRef("shop", "c0ffee", td),
        "scale": {"unit": "PERCENT", "value": 100.0},
    }
    return {"groups": groups, "rules": rules, "td": td, "td2": td2, "task_set": task_set}


def _service_manifest() -> Desired:
    spec = {"cluster": CLUSTER, "serviceName": SERVICE}
    return Desired(services={SERVICE: Manifest("Service", SERVICE, spec, Source("shop.yaml"))})


@pytest.fixture(scope="module")
def world(sim_sandbox: Any) -> dict[str, Any]:
    return _setup(sim_sandbox)


@pytest.fixture
def aws(sim_sandbox: Any) -> Aws:
    return Aws(region=sim_sandbox.region, endpoint_url=sim_sandbox.endpoint)


def _writer(aws: Aws, calls: list[str] | None = None) -> TrafficWriter:
    executor = Executor(
        aws, Pacer(limits={}), before_call=(lambda api, _c: calls.append(api)) if calls is not None else None
    )
    return TrafficWriter(executor, CLUSTER, SERVICE, Change("Service", f"{CLUSTER}/{SERVICE}", NO_CHANGE))


def _task_sets(aws: Aws) -> dict[str, Any]:
    observed = Observer(aws).observe(_service_manifest())
    return {ts.task_definition: ts for ts in task_sets_of(observed.services[(CLUSTER, SERVICE)])}


def test_task_sets_are_created_observed_made_primary_and_deleted(
    sim_sandbox: Any, world: dict, aws: Aws
) -> None:
    """CreateTaskSet registers green's target group with the commit sha and the content-hash tag (the same
    request again makes no second one); the Observer's DescribeServices shows both task sets, stable once
    their tasks run; primary and delete land."""
    calls: list[str] = []
    writer = _writer(aws, calls)
    blue = writer.create_task_set(
        task_set_request(world["task_set"], world["td"], world["groups"]["web-blue"], "sha1")
    )
    writer.set_primary(blue)
    green = writer.create_task_set(
        task_set_request(world["task_set"], world["td2"], world["groups"]["web-green"], "sha2")
    )
    assert calls == ["CreateTaskSet", "UpdateServicePrimaryTaskSet", "CreateTaskSet"]
    # Another writer (a restarted agent) sends the same request, so the same clientToken: the same green.
    again = _writer(aws).create_task_set(
        task_set_request(world["task_set"], world["td2"], world["groups"]["web-green"], "sha2")
    )
    assert again == green

    seen = _task_sets(aws)
    assert (seen[world["td"]].status, seen[world["td2"]].status) == ("PRIMARY", "ACTIVE")
    assert seen[world["td2"]].arn == green and seen[world["td2"]].external_id == "sha2"
    assert seen[world["td2"]].target_group == world["groups"]["web-green"]
    assert seen[world["td"]].target_group == world["groups"]["web-blue"]
    assert (seen[world["td2"]].scale, seen[world["td2"]].desired, seen[world["td2"]].stable) == (
        100.0,
        2,
        False,
    )

    sim_sandbox.simulator.clock.advance(2 * T)
    seen = _task_sets(aws)
    assert seen[world["td2"]].stable and seen[world["td2"]].running == 2

    described = sim_sandbox.client("ecs").describe_task_sets(
        cluster=CLUSTER, service=SERVICE, taskSets=[green], include=["TAGS"]
    )["taskSets"][0]
    assert {"key": HASH_TAG, "value": "c0ffee"} in described["tags"]

    writer.set_primary(green)
    writer.delete_task_set(blue)
    writer.delete_task_set(blue)  # already gone (draining): no error
    sim_sandbox.simulator.clock.advance(T)
    seen = _task_sets(aws)
    assert list(seen) == [world["td2"]] and seen[world["td2"]].status == "PRIMARY"


def test_weights_written_are_read_back_and_conditions_are_kept(
    sim_sandbox: Any, world: dict, aws: Aws
) -> None:
    """ModifyRule with a weighted forward: DescribeRules (through the observer) reads the same weights, and
    the rule's path condition is untouched."""
    rule = world["rules"]["web-prod"]
    blue, green = world["groups"]["web-blue"], world["groups"]["web-green"]
    elb = sim_sandbox.client("elbv2")
    before = elb.describe_rules(RuleArns=[rule])["Rules"][0]["Conditions"]
    writer = _writer(aws)
    observer = TrafficObserver(aws)
    for weights in (((blue, 90), (green, 10)), ((blue, 0), (green, 100)), ((blue, 100), (green, 0))):
        writer.set_weights(rule, weights)
        assert observer.rules([rule]) == {rule: dict(weights)}
    assert elb.describe_rules(RuleArns=[rule])["Rules"][0]["Conditions"] == before


def test_plain_forward_actions_read_as_100_percent() -> None:
    """A rule forwarding to one target group (the way rules start) is 100 % to it."""
    assert forward_weights({"Actions": [{"Type": "forward", "TargetGroupArn": "tg-a"}]}) == {"tg-a": 100}
    one = {"Actions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "tg-a"}]}}]}
    assert forward_weights(one) == {"tg-a": 100}
    assert forward_weights({"Actions": [{"Type": "fixed-response"}]}) == {}


def test_many_services_rules_are_read_in_batches(sim_sandbox: Any, world: dict, aws: Aws) -> None:
    """25 services' production and test rules (50 rules) take ceil(50/20) DescribeRules calls; a rule that
    no longer exists is left out instead of failing the others."""
    elb = sim_sandbox.client("elbv2")
    listener = elb.describe_rules(RuleArns=[world["rules"]["web-prod"]])["Rules"][0]["RuleArn"]
    listener_arn = listener.replace(":listener-rule/", ":listener/").rsplit("/", 1)[0]
    arns = []
    for i in range(50):
        arns.append(
            elb.create_rule(
                ListenerArn=listener_arn,
                Priority=100 + i,
                Conditions=[{"Field": "path-pattern", "Values": [f"/svc{i}/*"]}],
                Actions=[{"Type": "forward", "TargetGroupArn": world["groups"]["api-blue"]}],
            )["Rules"][0]["RuleArn"]
        )
    observer = TrafficObserver(aws)
    aws.counter.reset()
    found = observer.rules(arns)
    assert aws.counter.counts["elbv2.DescribeRules"] == math.ceil(50 / RULES_PER_CALL) == 3
    assert found == {arn: {world["groups"]["api-blue"]: 100} for arn in arns}

    elb.delete_rule(RuleArn=arns[0])
    assert set(observer.rules(arns)) == set(arns[1:])


def test_alarm_states_are_read_by_name(sim_sandbox: Any, world: dict, aws: Aws) -> None:
    """DescribeAlarms by name, in one call: each alarm's state; a name that matches nothing is left out."""
    sim_sandbox.set_alarm("web-5xx", "ALARM", reason="5xx")
    sim_sandbox.set_alarm("api-5xx", "OK", reason="fine")
    observer = TrafficObserver(aws)
    aws.counter.reset()
    states = observer.alarms(["web-5xx", "api-5xx", "no-such-alarm"])
    assert states == {"web-5xx": "ALARM", "api-5xx": "OK"}
    assert aws.counter.counts["cloudwatch.DescribeAlarms"] == 1


def test_a_refused_write_is_a_typed_error(sim_sandbox: Any, world: dict, aws: Aws) -> None:
    """Writing weights to a rule that does not exist is the agent's typed error, not a ClientError."""
    rule = world["rules"]["web-prod"].rsplit("/", 1)[0] + "/0000000000000000"
    with pytest.raises(AwsPermanentError, match="ModifyRule"):
        _writer(aws).set_weights(rule, ((world["groups"]["web-blue"], 100),))
