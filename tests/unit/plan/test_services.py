"""The desired CreateService request and the service normal form both sides are compared in."""

from __future__ import annotations

from typing import Any

import pytest

from agent.plan.model import TaskDefinitionRef
from agent.plan.services import (
    MANAGED_TAG,
    TASK_SET_FIELDS,
    alarm_name,
    create_service_request,
    deployment_settings,
    duration_minutes,
    duration_seconds,
    normalise_service,
    resolve_strategy,
)

TG_BLUE = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-blue/1"
TG_GREEN = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web-green/2"
RULE_PROD = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/lb/1/2/3"
RULE_TEST = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener-rule/app/lb/1/4/5"
ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRole"
TD_ARN = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7"
REF = TaskDefinitionRef("web", "a1b2c3d4e5f6a7b8", TD_ARN)


def _spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "cluster": "prod",
        "taskDefinition": "../taskdefs/web.json",
        "desiredCount": 2,
        "launchType": "FARGATE",
        "networkConfiguration": {
            "awsvpcConfiguration": {"subnets": ["subnet-b", "subnet-a"], "securityGroups": ["sg-1"]}
        },
        "loadBalancers": [
            {
                "targetGroup": TG_BLUE,
                "alternateTargetGroup": TG_GREEN,
                "productionListenerRule": RULE_PROD,
                "testListenerRule": RULE_TEST,
                "role": ROLE,
                "containerName": "web",
                "containerPort": 8080,
            }
        ],
        "tags": {"team": "storefront"},
        "strategy": "rolling-safe",
        "windows": ["weekday-nights"],
        "dependsOn": ["api"],
        "ignoreDrift": ["/desiredCount"],
    }
    spec.update(overrides)
    return spec


def _request(
    spec: dict[str, Any] | None = None, strategy: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    return create_service_request(
        spec or _spec(), service_name="web", cluster="prod", task_definition=REF, strategy=strategy, **kw
    )


@pytest.mark.parametrize(
    ("text", "seconds", "minutes"),
    [("90s", 90, 2), ("5m", 300, 5), ("1h30m", 5400, 90), ("2h", 7200, 120), ("1m30s", 90, 2), (60, 60, 1)],
)
def test_durations(text: Any, seconds: int, minutes: int) -> None:
    """Manifest durations read as seconds and as whole minutes rounded up."""
    assert duration_seconds(text) == seconds
    assert duration_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "5", "m5", "5d", "1m2h"])
def test_bad_durations(text: str) -> None:
    """A malformed duration is an error, not a silent zero."""
    with pytest.raises(ValueError):
        duration_seconds(text)


def test_request_maps_manifest_fields() -> None:
    """Load balancers, tags and network configuration take their CreateService shape; ours are dropped."""
    request = _request()
    assert request["loadBalancers"] == [
        {
            "targetGroupArn": TG_BLUE,
            "containerName": "web",
            "containerPort": 8080,
            "advancedConfiguration": {
                "alternateTargetGroupArn": TG_GREEN,
                "productionListenerRule": RULE_PROD,
                "testListenerRule": RULE_TEST,
                "roleArn": ROLE,
            },
        }
    ]
    # the agent's own marker comes with the manifest's tags: prune deletes only services carrying it
    assert request["tags"] == [MANAGED_TAG, {"key": "team", "value": "storefront"}]
    assert request["taskDefinition"] is REF
    assert request["cluster"] == "prod" and request["serviceName"] == "web"
    assert not {"strategy", "windows", "dependsOn", "ignoreDrift"} & set(request)


def test_desired_count_only_when_set() -> None:
    """Without desiredCount in the manifest, the request leaves it to autoscaling."""
    spec = _spec()
    del spec["desiredCount"]
    assert "desiredCount" not in _request(spec)


@pytest.mark.parametrize(
    ("name", "strategy", "controller", "configuration"),
    [
        (
            "default",
            None,
            {"type": "ECS"},
            {
                "strategy": "ROLLING",
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            },
        ),
        (
            "rolling with alarms",
            {
                "type": "rolling",
                "rolling": {"minimumHealthyPercent": 50, "maximumPercent": 150},
                "rollbackOn": {
                    "circuitBreaker": False,
                    "alarms": ["b-alarm", "arn:aws:cloudwatch:eu-west-1:1:alarm:a-alarm"],
                },
            },
            {"type": "ECS"},
            {
                "strategy": "ROLLING",
                "maximumPercent": 150,
                "minimumHealthyPercent": 50,
                "deploymentCircuitBreaker": {"enable": False, "rollback": False},
                "alarms": {"alarmNames": ["a-alarm", "b-alarm"], "enable": True, "rollback": True},
            },
        ),
        (
            "blue/green",
            {"type": "blueGreen", "engine": "ecs", "bake": "15m", "rollbackOn": {"alarms": ["api-5xx"]}},
            {"type": "ECS"},
            {
                "strategy": "BLUE_GREEN",
                "bakeTimeInMinutes": 15,
                "alarms": {"alarmNames": ["api-5xx"], "enable": True, "rollback": True},
            },
        ),
        (
            "canary",
            {"type": "canary", "engine": "ecs", "canary": {"percent": 10, "bake": "5m"}, "bake": "10m"},
            {"type": "ECS"},
            {
                "strategy": "CANARY",
                "bakeTimeInMinutes": 10,
                "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5},
            },
        ),
        (
            "linear",
            {"type": "linear", "linear": {"stepPercent": 25, "stepBake": "2m"}},
            {"type": "ECS"},
            {
                "strategy": "LINEAR",
                "bakeTimeInMinutes": 0,  # always sent: ECS requires it for BLUE_GREEN, and 0 is explicit
                "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 2},
            },
        ),
        (
            "lambda hooks",
            {
                "type": "blueGreen",
                "bake": "1m",
                "hookRole": "arn:aws:iam::1:role/hooks",
                "hooks": [
                    {"stage": "postTestTraffic", "lambda": "arn:aws:lambda:eu-west-1:1:function:smoke"},
                    {
                        "stage": "preScaleUp",
                        "lambda": "arn:aws:lambda:eu-west-1:1:function:gate",
                        "timeout": "90s",
                        "onTimeout": "continue",
                    },
                ],
            },
            {"type": "ECS"},
            {
                "strategy": "BLUE_GREEN",
                "bakeTimeInMinutes": 1,
                "lifecycleHooks": [
                    {
                        "targetType": "AWS_LAMBDA",
                        "hookTargetArn": "arn:aws:lambda:eu-west-1:1:function:smoke",
                        "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                        "roleArn": "arn:aws:iam::1:role/hooks",
                        "timeoutConfiguration": {"action": "ROLLBACK"},
                    },
                    {
                        "targetType": "AWS_LAMBDA",
                        "hookTargetArn": "arn:aws:lambda:eu-west-1:1:function:gate",
                        "lifecycleStages": ["PRE_SCALE_UP"],
                        "roleArn": "arn:aws:iam::1:role/hooks",
                        "timeoutConfiguration": {"action": "CONTINUE", "timeoutInMinutes": 2},
                    },
                ],
            },
        ),
        (
            "agent",
            {"type": "canary", "engine": "agent", "canary": {"percent": 10, "bake": "5m"}},
            {"type": "EXTERNAL"},
            None,
        ),
    ],
)
def test_deployment_settings(name: str, strategy: Any, controller: Any, configuration: Any) -> None:
    """Each strategy maps to its deployment controller and configuration (one row per strategy type)."""
    assert deployment_settings(strategy) == (controller, configuration), name


def test_maintenance_window_adds_the_pause_hook_on_engine_ecs_only() -> None:
    """A service with a maintenance window gets the agent's PAUSE hook before production traffic on
    engine ecs; rolling and agent-engine services get none."""
    canary = {"type": "canary", "canary": {"percent": 10, "bake": "5m"}}
    _, config = deployment_settings(canary, pause=True)
    assert config is not None and config["lifecycleHooks"] == [
        {
            "targetType": "PAUSE",
            "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"],
            "timeoutConfiguration": {"timeoutInMinutes": 20160, "action": "ROLLBACK"},
        }
    ]
    assert "lifecycleHooks" not in (deployment_settings({"type": "rolling"}, pause=True)[1] or {})
    assert deployment_settings({**canary, "engine": "agent"}, pause=True)[1] is None


def test_lifecycle_hooks_compare_with_ecs_defaults_filled() -> None:
    """Hooks as ECS echoes them (defaults filled, another order) normalise to the hooks asked for."""
    asked = {
        "deploymentConfiguration": {
            "strategy": "BLUE_GREEN",
            "lifecycleHooks": [
                {"hookTargetArn": "arn:l:b", "roleArn": "arn:r", "lifecycleStages": ["POST_SCALE_UP"]},
                {"targetType": "PAUSE", "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"]},
            ],
        }
    }
    echoed = {
        "deploymentConfiguration": {
            "strategy": "BLUE_GREEN",
            "lifecycleHooks": [
                {
                    "targetType": "PAUSE",
                    "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"],
                    "timeoutConfiguration": {"timeoutInMinutes": 1440, "action": "ROLLBACK"},
                },
                {
                    "targetType": "AWS_LAMBDA",
                    "hookTargetArn": "arn:l:b",
                    "roleArn": "arn:r",
                    "lifecycleStages": ["POST_SCALE_UP"],
                    "timeoutConfiguration": {"timeoutInMinutes": 1440, "action": "ROLLBACK"},
                },
            ],
        }
    }
    want, have = normalise_service(asked), normalise_service(echoed)
    assert want["deploymentConfiguration"] == have["deploymentConfiguration"]
    other = normalise_service({"deploymentConfiguration": {"strategy": "BLUE_GREEN"}})
    assert other["deploymentConfiguration"] != want["deploymentConfiguration"]


def test_resolve_strategy_by_name_or_inline() -> None:
    """A strategy is found by name, taken inline, or absent."""
    strategies = {"rolling-safe": {"type": "rolling"}}
    assert resolve_strategy("rolling-safe", strategies) == {"type": "rolling"}
    assert resolve_strategy({"type": "canary"}, strategies) == {"type": "canary"}
    assert resolve_strategy(None, strategies) is None
    with pytest.raises(KeyError):
        resolve_strategy("missing", strategies)


def test_agent_engine_moves_task_set_fields() -> None:
    """With the EXTERNAL controller the task definition, LBs and network move to ``taskSet``."""
    strategy = {"type": "canary", "engine": "agent", "canary": {"percent": 10, "bake": "5m"}}
    request = _request(strategy=strategy, external_id="abc123")
    assert request["deploymentController"] == {"type": "EXTERNAL"}
    assert not set(TASK_SET_FIELDS) & set(request)
    task_set = request["taskSet"]
    assert task_set["taskDefinition"] is REF
    assert task_set["launchType"] == "FARGATE"
    assert task_set["scale"] == {"unit": "PERCENT", "value": 100.0}
    assert task_set["externalId"] == "abc123"
    assert task_set["loadBalancers"] == [
        {"targetGroupArn": TG_BLUE, "containerName": "web", "containerPort": 8080}
    ]
    assert "networkConfiguration" in task_set


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("web-5xx", "web-5xx"),
        ("arn:aws:cloudwatch:eu-west-1:1:alarm:web-5xx", "web-5xx"),
        ({"name": "x"}, "x"),
    ],
)
def test_alarm_name(value: Any, name: str) -> None:
    """Deployment alarms take names, whatever form the reference was resolved to."""
    assert alarm_name(value) == name


def _described(**overrides: Any) -> dict[str, Any]:
    """A DescribeServices entry as ECS returns it for ``_request()`` after CreateService."""
    service: dict[str, Any] = {
        "serviceArn": "arn:aws:ecs:eu-west-1:123456789012:service/prod/web",
        "serviceName": "web",
        "clusterArn": "arn:aws:ecs:eu-west-1:123456789012:cluster/prod",
        "loadBalancers": [
            {
                "targetGroupArn": TG_BLUE,
                "containerName": "web",
                "containerPort": 8080,
                "advancedConfiguration": {
                    "alternateTargetGroupArn": TG_GREEN,
                    "productionListenerRule": RULE_PROD,
                    "testListenerRule": RULE_TEST,
                    "roleArn": ROLE,
                },
            }
        ],
        "serviceRegistries": [],
        "status": "ACTIVE",
        "desiredCount": 2,
        "runningCount": 2,
        "pendingCount": 0,
        "launchType": "FARGATE",
        "platformVersion": "LATEST",
        "platformFamily": "Linux",
        "taskDefinition": TD_ARN,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "alarms": {"alarmNames": [], "enable": False, "rollback": False},
            "strategy": "ROLLING",
        },
        "deployments": [{"id": "ecs-svc/1", "status": "PRIMARY", "taskDefinition": TD_ARN}],
        "roleArn": "arn:aws:iam::123456789012:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
        "events": [{"message": "has reached a steady state."}],
        "createdAt": "2025-01-01T00:00:00Z",
        "placementConstraints": [],
        "placementStrategy": [],
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-a", "subnet-b"],
                "securityGroups": ["sg-1"],
                "assignPublicIp": "DISABLED",
            }
        },
        "healthCheckGracePeriodSeconds": 0,
        "schedulingStrategy": "REPLICA",
        "deploymentController": {"type": "ECS"},
        "tags": [{"key": "team", "value": "storefront"}, MANAGED_TAG],
        "createdBy": "arn:aws:iam::123456789012:role/deployer",
        "enableECSManagedTags": False,
        "propagateTags": "NONE",
        "enableExecuteCommand": False,
    }
    service.update(overrides)
    return service


def test_described_service_normalises_like_the_request() -> None:
    """ECS's defaults, ARNs and ordering do not make a freshly created service differ from its request."""
    want = normalise_service(_request(strategy={"type": "rolling"}))
    have = normalise_service(_described())
    have.pop(
        "role"
    )  # ECS reports its service-linked role; the planner ignores role unless the manifest sets it
    assert have == want


@pytest.mark.parametrize(
    ("name", "fields", "expected"),
    [
        ("platform version on Fargate", {"launchType": "FARGATE"}, {"platformVersion": "LATEST"}),
        (
            "platform version on Fargate Spot",
            {"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT"}]},
            {"platformVersion": "LATEST"},
        ),
        ("scheduling", {}, {"schedulingStrategy": "REPLICA"}),
        ("propagate tags", {}, {"propagateTags": "NONE"}),
        ("managed tags", {}, {"enableECSManagedTags": False}),
        ("execute command", {}, {"enableExecuteCommand": False}),
        ("grace period", {}, {"healthCheckGracePeriodSeconds": 0}),
        ("controller", {}, {"deploymentController": {"type": "ECS"}}),
        (
            "deployment defaults",
            {},
            {
                "deploymentConfiguration": {
                    "maximumPercent": 200,
                    "minimumHealthyPercent": 100,
                    "strategy": "ROLLING",
                    "deploymentCircuitBreaker": {
                        "enable": False,
                        "rollback": False,
                        "resetOnHealthyTask": True,
                    },
                }
            },
        ),
        (
            "daemon defaults",
            {"schedulingStrategy": "DAEMON"},
            {
                "deploymentConfiguration": {
                    "maximumPercent": 100,
                    "minimumHealthyPercent": 0,
                    "strategy": "ROLLING",
                    "deploymentCircuitBreaker": {
                        "enable": False,
                        "rollback": False,
                        "resetOnHealthyTask": True,
                    },
                }
            },
        ),
        (
            "public IP off",
            {"networkConfiguration": {"awsvpcConfiguration": {"subnets": ["b", "a", "b"]}}},
            {
                "networkConfiguration": {
                    "awsvpcConfiguration": {"subnets": ["a", "b"], "assignPublicIp": "DISABLED"}
                }
            },
        ),
        (
            "capacity provider defaults",
            {"capacityProviderStrategy": [{"capacityProvider": "x", "weight": 1}]},
            {"capacityProviderStrategy": [{"capacityProvider": "x", "weight": 1, "base": 0}]},
        ),
        ("task definition ARN", {"taskDefinition": TD_ARN}, {"taskDefinition": "web:7"}),
        (
            "task definition ref",
            {"taskDefinition": TaskDefinitionRef("web", "h", None)},
            {"taskDefinition": "web:(new)"},
        ),
        (
            "tags sorted, aws: dropped",
            {
                "tags": [
                    {"key": "b", "value": "2"},
                    {"key": "aws:x", "value": "y"},
                    {"key": "a", "value": "1"},
                ]
            },
            {"tags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]},
        ),
    ],
)
def test_normalise_service_table(name: str, fields: dict[str, Any], expected: dict[str, Any]) -> None:
    """Each ECS default and ordering rule of the service normal form (one row per rule)."""
    normal = normalise_service({"serviceName": "s", **fields})
    for key, value in expected.items():
        assert normal[key] == value, name


def test_normalise_service_keeps_only_request_fields() -> None:
    """Status, counts, deployments and events are not part of the comparable service."""
    normal = normalise_service(_described())
    assert not {
        "status",
        "runningCount",
        "deployments",
        "events",
        "serviceArn",
        "clusterArn",
        "createdAt",
    } & set(normal)


@pytest.mark.parametrize(
    "strategy",
    [
        None,
        {"type": "blueGreen", "bake": "5m"},
        {"type": "canary", "engine": "agent", "canary": {"percent": 5}},
    ],
)
def test_normalise_service_is_idempotent(strategy: Any) -> None:
    """Normalising a normalised service changes nothing."""
    once = normalise_service(_request(strategy=strategy))
    assert normalise_service(once) == once


def test_external_service_reads_primary_task_set() -> None:
    """For EXTERNAL services the task definition and network come from the PRIMARY task set."""
    strategy = {"type": "canary", "engine": "agent", "canary": {"percent": 10, "bake": "5m"}}
    want = normalise_service(_request(strategy=strategy))
    old_ts = {"status": "ACTIVE", "taskDefinition": TD_ARN.replace(":7", ":6"), "launchType": "FARGATE"}
    primary = {
        "status": "PRIMARY",
        "taskDefinition": TD_ARN,
        "launchType": "FARGATE",
        "platformVersion": "LATEST",
        "networkConfiguration": {
            "awsvpcConfiguration": {"subnets": ["subnet-a", "subnet-b"], "securityGroups": ["sg-1"]}
        },
        "loadBalancers": [{"targetGroupArn": TG_BLUE, "containerName": "web", "containerPort": 8080}],
        "scale": {"unit": "PERCENT", "value": 100.0},
        "externalId": "abc",
    }
    described = _described(
        deploymentController={"type": "EXTERNAL"},
        taskSets=[old_ts, primary],
        taskDefinition=None,
        launchType="EC2",
        loadBalancers=[],
        deploymentConfiguration={"maximumPercent": 200, "minimumHealthyPercent": 100},
    )
    have = normalise_service(described)
    have.pop("role")
    assert have["taskDefinition"] == "web:7"
    assert have == want
