"""The agent engine's traffic invariant (agent.sandbox.traffic_invariant.check_traffic), checked against the
sandbox.

It must pass for every safe traffic state and fail, naming the rule and target group, for each unsafe
one: weights that do not sum to 100, production traffic to a group with no task set, or to a task set
that is still starting or can never start.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_engine_support import _rules

from agent.sandbox.server import Sandbox
from agent.sandbox.traffic_invariant import (
    TrafficInvariantError,
    check_traffic,
    rule_weights,
    target_group_name,
)

T = 2.0  # sim_sandbox's task_start_seconds
CLUSTER = "sim-invariant"


def _weights(sandbox: Sandbox, rule: str, **weights: int) -> None:
    groups, rules = _rules(sandbox)
    pairs = [{"TargetGroupArn": groups[name.replace("_", "-")], "Weight": w} for name, w in weights.items()]
    sandbox.client("elbv2").modify_rule(
        RuleArn=rules[rule], Actions=[{"Type": "forward", "ForwardConfig": {"TargetGroups": pairs}}]
    )


@pytest.fixture(scope="module")
def world(sim_sandbox: Sandbox) -> dict[str, Any]:
    """An EXTERNAL service `web` in its own cluster with a steady blue task set on api-blue."""
    ecs = sim_sandbox.client("ecs")
    groups, rules = _rules(sim_sandbox)
    ecs.create_cluster(clusterName=CLUSTER, capacityProviders=["FARGATE"])
    ecs.create_service(
        cluster=CLUSTER, serviceName="web", desiredCount=2, deploymentController={"type": "EXTERNAL"}
    )

    def taskdef(image: str) -> str:
        return str(
            ecs.register_task_definition(
                family="invariant",
                networkMode="awsvpc",
                requiresCompatibilities=["FARGATE"],
                cpu="256",
                memory="512",
                containerDefinitions=[
                    {"name": "web", "image": image, "portMappings": [{"containerPort": 9000}]}
                ],
            )["taskDefinition"]["taskDefinitionArn"]
        )

    def task_set(image: str, group: str, sha: str) -> dict[str, Any]:
        return dict(
            ecs.create_task_set(
                cluster=CLUSTER,
                service="web",
                taskDefinition=taskdef(image),
                externalId=sha,
                launchType="FARGATE",
                loadBalancers=[
                    {"targetGroupArn": groups[group], "containerName": "web", "containerPort": 9000}
                ],
            )["taskSet"]
        )

    blue = task_set("api:1", "api-blue", "b" * 40)
    ecs.update_service_primary_task_set(cluster=CLUSTER, service="web", primaryTaskSet=blue["taskSetArn"])
    sim_sandbox.simulator.clock.advance(2 * T)
    return {"ecs": ecs, "groups": groups, "rules": rules, "task_set": task_set, "blue": blue}


def _check(sandbox: Sandbox, world: dict[str, Any], test: bool = True) -> Any:
    rules = world["rules"]
    return check_traffic(sandbox, CLUSTER, "web", rules["api-prod"], rules["api-test"] if test else None)


def test_plain_forward_to_a_steady_task_set_passes(sim_sandbox: Sandbox, world: dict[str, Any]) -> None:
    """The seeded rules (a plain forward to api-blue; the test rule on an empty api-green) are safe, and
    the snapshot reports the weights by ARN and name."""
    snapshot = _check(sim_sandbox, world)
    assert snapshot.production == {world["groups"]["api-blue"]: 100}
    assert snapshot.weight("api-blue") == 100 and snapshot.weight("api-green") == 0
    assert snapshot.weight("api-green", rule="test") == 100
    assert [ts["externalId"] for ts in snapshot.registered("api-blue")] == ["b" * 40]


def test_weights_that_do_not_sum_to_100_fail(sim_sandbox: Sandbox, world: dict[str, Any]) -> None:
    """90 + 20 on the production rule is caught and named."""
    _weights(sim_sandbox, "api-prod", api_blue=90, api_green=20)
    try:
        with pytest.raises(TrafficInvariantError, match="production rule weights sum to 110, not 100"):
            _check(sim_sandbox, world)
    finally:
        _weights(sim_sandbox, "api-prod", api_blue=100, api_green=0)
    assert _check(sim_sandbox, world).weight("api-blue") == 100


def test_traffic_to_a_group_without_task_set_fails(sim_sandbox: Sandbox, world: dict[str, Any]) -> None:
    """10 % of production on api-green, where no task set is registered, is a violation."""
    _weights(sim_sandbox, "api-prod", api_blue=90, api_green=10)
    try:
        with pytest.raises(
            TrafficInvariantError, match="sends 10 % to api-green, which has no stable task set"
        ):
            _check(sim_sandbox, world)
    finally:
        _weights(sim_sandbox, "api-prod", api_blue=100, api_green=0)


def test_traffic_only_once_green_is_steady(sim_sandbox: Sandbox, world: dict[str, Any]) -> None:
    """Traffic to a green task set that is still starting fails; once it runs every task it passes; a
    broken green never passes however long the clock runs."""
    green = world["task_set"]("api:2", "api-green", "g" * 40)
    _weights(sim_sandbox, "api-prod", api_blue=90, api_green=10)
    try:
        with pytest.raises(TrafficInvariantError, match=r"gggggggggggg ACTIVE STABILIZING 0/2"):
            _check(sim_sandbox, world)
        sim_sandbox.simulator.clock.advance(2 * T)
        snapshot = _check(sim_sandbox, world)
        assert (snapshot.weight("api-blue"), snapshot.weight("api-green")) == (90, 10)

        world["ecs"].delete_task_set(cluster=CLUSTER, service="web", taskSet=green["taskSetArn"], force=True)
        world["task_set"]("api:broken-3", "api-green", "x" * 40)
        sim_sandbox.simulator.clock.advance(30 * T)
        with pytest.raises(TrafficInvariantError, match="xxxxxxxxxxxx ACTIVE STABILIZING 0/2"):
            _check(sim_sandbox, world)
    finally:
        _weights(sim_sandbox, "api-prod", api_blue=100, api_green=0)
    assert _check(sim_sandbox, world, test=False).weight("api-blue") == 100


def test_rule_weights_reads_every_forward_form() -> None:
    """A plain forward (with or without AWS's one-group echo) is 100 %; a weighted one is as written."""
    plain = {"Actions": [{"Type": "forward", "TargetGroupArn": "tg-a"}]}
    echoed = {
        "Actions": [
            {
                "Type": "forward",
                "TargetGroupArn": "tg-a",
                "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "tg-a", "Weight": 1}]},
            }
        ]
    }
    weighted = {
        "Actions": [
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": "tg-a", "Weight": 75},
                        {"TargetGroupArn": "tg-b", "Weight": 25},
                    ]
                },
            }
        ]
    }
    assert rule_weights(plain) == rule_weights(echoed) == {"tg-a": 100}
    assert rule_weights(weighted) == {"tg-a": 75, "tg-b": 25}
    with pytest.raises(TrafficInvariantError, match="0 forward actions"):
        rule_weights({"RuleArn": "r", "Actions": [{"Type": "fixed-response"}]})
    assert (
        target_group_name("arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/web-blue/0a1b") == "web-blue"
    )
