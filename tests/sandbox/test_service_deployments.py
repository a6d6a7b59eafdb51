"""The sandbox's service deployments: ECS-native BLUE_GREEN / LINEAR / CANARY deployments move through
their lifecycle stages, hooks, traffic steps, bake and rollback with the sandbox clock, and the four
ServiceDeployment APIs answer about them.

Every test drives a manual clock (``sim_sandbox``: 2 s per task start) and never sleeps. Every ECS reply
the client receives is checked, raw, against botocore's output shape before botocore parses it.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_simulator import T, checked_client

from agent.sandbox.server import Sandbox

ROLE = "arn:aws:iam::123456789012:role/ecsInfrastructureRole"
HOOK_ROLE = "arn:aws:iam::123456789012:role/ecs-hooks"
SMOKE = "arn:aws:lambda:eu-west-1:123456789012:function:smoke"
PAUSE_HOOK = {
    "targetType": "PAUSE",
    "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"],
    "timeoutConfiguration": {"timeoutInMinutes": 60, "action": "ROLLBACK"},
}


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def ecs(sim_sandbox: Sandbox) -> Any:
    """A shape-checked ECS client on ``sim_sandbox`` with the default simulator settings."""
    sim_sandbox.simulator.configure(failure_pattern="*:broken*", task_start_seconds=T, alarm_poll_seconds=60)
    return checked_client(sim_sandbox)


@pytest.fixture(scope="module")
def wiring(sim_sandbox: Sandbox) -> dict[str, str]:
    """The seed's target groups and listener rules (by Name tag), as ARNs."""
    elbv2 = sim_sandbox.client("elbv2")
    out = {t["TargetGroupName"]: t["TargetGroupArn"] for t in elbv2.describe_target_groups()["TargetGroups"]}
    for lb in elbv2.describe_load_balancers()["LoadBalancers"]:
        for listener in elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            arns = [r["RuleArn"] for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]]
            for desc in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]:
                for tag in desc["Tags"]:
                    if tag["Key"] == "Name":
                        out[tag["Value"]] = desc["ResourceArn"]
    return out


def _load_balancers(wiring: dict[str, str], test_rule: bool = True) -> list[dict[str, Any]]:
    advanced = {
        "alternateTargetGroupArn": wiring["web-green"],
        "productionListenerRule": wiring["web-prod"],
        "roleArn": ROLE,
    }
    if test_rule:
        advanced["testListenerRule"] = wiring["web-test"]
    return [
        {
            "targetGroupArn": wiring["web-blue"],
            "containerName": "app",
            "containerPort": 8080,
            "advancedConfiguration": advanced,
        }
    ]


def _native_service(
    sandbox: Sandbox,
    ecs: Any,
    wiring: dict[str, str],
    cluster: str,
    config: dict[str, Any],
    desired: int = 2,
    image: str = "nginx:2",
) -> str:
    """Service ``web`` on ``cluster`` running ``<cluster>:1`` (steady), then updated to ``<cluster>:2``
    (``image``) with ``config``: returns the new deployment's ARN."""
    ecs.create_cluster(clusterName=cluster)
    for tag in ("nginx:1", image):
        ecs.register_task_definition(
            family=cluster, containerDefinitions=[{"name": "app", "image": tag, "memory": 128}]
        )
    ecs.create_service(
        cluster=cluster,
        serviceName="web",
        taskDefinition=f"{cluster}:1",
        desiredCount=desired,
        launchType="EC2",
        loadBalancers=_load_balancers(wiring),
        deploymentConfiguration=config,
    )
    sandbox.simulator.clock.advance(T * desired + T)
    first = ecs.list_service_deployments(cluster=cluster, service="web")["serviceDeployments"]
    assert [d["status"] for d in first] == ["SUCCESSFUL"]  # the first deployment: nothing to shift from
    ecs.update_service(cluster=cluster, service="web", taskDefinition=f"{cluster}:2")
    latest = ecs.list_service_deployments(cluster=cluster, service="web")["serviceDeployments"][0]
    assert latest["status"] == "PENDING"
    return str(latest["serviceDeploymentArn"])


def _describe(ecs: Any, arn: str) -> dict[str, Any]:
    return dict(ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"][0])


def _view(deployment: dict[str, Any]) -> tuple[str, str | None, float | None, list[str]]:
    """(status, lifecycle stage, green's production weight, hook statuses)."""
    return (
        deployment["status"],
        deployment.get("lifecycleStage"),
        deployment["targetServiceRevision"].get("requestedProductionTrafficWeight"),
        [h["status"] for h in deployment.get("lifecycleHookDetails", [])],
    )


def _running(ecs: Any, cluster: str) -> list[tuple[str, str, int]]:
    service = ecs.describe_services(cluster=cluster, services=["web"])["services"][0]
    return [
        (d["status"], d["taskDefinition"].rsplit("/", 1)[1], d["runningCount"])
        for d in service["deployments"]
    ]


def _step(sandbox: Sandbox, ecs: Any, arn: str, seconds: float = T) -> dict[str, Any]:
    sandbox.simulator.clock.advance(seconds)
    return _describe(ecs, arn)


def _awaiting(deployment: dict[str, Any]) -> str:
    hooks = [h for h in deployment["lifecycleHookDetails"] if h["status"] == "AWAITING_ACTION"]
    assert len(hooks) == 1, deployment.get("lifecycleHookDetails")
    return str(hooks[0]["hookId"])


# -- the native strategies to success --------------------------------------------------------------


def test_blue_green_goes_through_every_stage_bakes_and_cleans_up(
    sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]
) -> None:
    """BLUE_GREEN: green scales up beside blue, gets test traffic, then all production traffic, bakes
    bakeTimeInMinutes, and only then are blue's tasks stopped and the deployment SUCCESSFUL."""
    arn = _native_service(
        sim_sandbox, ecs, wiring, "sd-bg", {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5}
    )
    seen = []
    for _ in range(4):
        seen.append(_view(_step(sim_sandbox, ecs, arn)))
    assert seen == [
        ("IN_PROGRESS", "SCALE_UP", 0.0, []),  # one green task per tick
        ("IN_PROGRESS", "BAKE_TIME", 100.0, []),  # two: test traffic, production traffic, bake
        ("IN_PROGRESS", "BAKE_TIME", 100.0, []),
        ("IN_PROGRESS", "BAKE_TIME", 100.0, []),
    ]
    during = _describe(ecs, arn)
    assert during["targetServiceRevision"]["requestedTestTrafficWeight"] == 100.0
    assert during["sourceServiceRevisions"][0]["requestedProductionTrafficWeight"] == 0.0
    assert _running(ecs, "sd-bg") == [("PRIMARY", "sd-bg:2", 2), ("ACTIVE", "sd-bg:1", 2)]  # blue kept warm

    done = _step(sim_sandbox, ecs, arn, 5 * 60 - 2 * T)  # the bake started on the second tick
    assert _view(done)[:2] == ("IN_PROGRESS", "CLEAN_UP")
    assert _running(ecs, "sd-bg") == [("PRIMARY", "sd-bg:2", 2), ("ACTIVE", "sd-bg:1", 0)]
    done = _step(sim_sandbox, ecs, arn)
    assert done["status"] == "SUCCESSFUL" and done["finishedAt"] and done["alarms"]["status"] == "DISABLED"
    assert _running(ecs, "sd-bg") == [("PRIMARY", "sd-bg:2", 2)]


def test_canary_moves_a_slice_bakes_then_the_rest(
    sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]
) -> None:
    """CANARY: canaryPercent of production traffic for canaryBakeTimeInMinutes, then 100 %, then the
    final bake."""
    config = {
        "strategy": "CANARY",
        "bakeTimeInMinutes": 2,
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 3},
    }
    arn = _native_service(sim_sandbox, ecs, wiring, "sd-canary", config)
    _step(sim_sandbox, ecs, arn, 2 * T)
    assert _view(_describe(ecs, arn)) == ("IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT", 10.0, [])
    assert _view(_step(sim_sandbox, ecs, arn, 3 * 60 - 2 * T))[2] == 10.0  # still baking
    assert _view(_step(sim_sandbox, ecs, arn, 2 * T))[1:3] == ("BAKE_TIME", 100.0)
    assert _step(sim_sandbox, ecs, arn, 2 * 60 + 2 * T)["status"] == "SUCCESSFUL"


def test_linear_steps_and_lambda_hooks_before_every_step(
    sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]
) -> None:
    """LINEAR 25 %: 25, 50, 75, 100 with stepBakeTimeInMinutes between steps; a Lambda hook at
    PRE_PRODUCTION_TRAFFIC_SHIFT is invoked before each of the four steps."""
    config = {
        "strategy": "LINEAR",
        "bakeTimeInMinutes": 0,
        "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 1},
        "lifecycleHooks": [
            {
                "hookTargetArn": SMOKE + "-linear",
                "roleArn": HOOK_ROLE,
                "lifecycleStages": ["PRE_PRODUCTION_TRAFFIC_SHIFT"],
            }
        ],
    }
    arn = _native_service(sim_sandbox, ecs, wiring, "sd-linear", config)
    weights = []
    for _ in range(200):
        deployment = _step(sim_sandbox, ecs, arn, 10)
        weight = deployment["targetServiceRevision"]["requestedProductionTrafficWeight"]
        if not weights or weights[-1] != weight:
            weights.append(weight)
        if deployment["status"] != "IN_PROGRESS":
            break
    assert deployment["status"] == "SUCCESSFUL"
    assert weights == [25.0, 50.0, 75.0, 100.0]
    calls = [
        i for i in sim_sandbox.simulator.service_deployments.invocations if i["serviceDeploymentArn"] == arn
    ]
    assert [c["stage"] for c in calls] == ["PRE_PRODUCTION_TRAFFIC_SHIFT"] * 4


# -- hooks ------------------------------------------------------------------------------------------


def test_pause_hook_holds_until_continued(sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]) -> None:
    """A PAUSE hook before production traffic holds the deployment (AWAITING_ACTION, no production
    traffic) however long it waits, until ContinueServiceDeployment(CONTINUE)."""
    arn = _native_service(
        sim_sandbox,
        ecs,
        wiring,
        "sd-pause",
        {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [PAUSE_HOOK]},
    )
    held = _step(sim_sandbox, ecs, arn, 2 * T)
    assert _view(held) == ("IN_PROGRESS", "PRODUCTION_TRAFFIC_SHIFT", 0.0, ["AWAITING_ACTION"])
    assert held["lifecycleHookDetails"][0]["targetType"] == "PAUSE"
    assert held["lifecycleHookDetails"][0]["timeoutAction"] == "ROLLBACK"
    assert _view(_step(sim_sandbox, ecs, arn, 30 * 60)) == _view(held)
    with pytest.raises(ClientError, match="InvalidParameterException"):
        ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId="not-a-hook")

    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(held), action="CONTINUE")
    assert _step(sim_sandbox, ecs, arn)["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0
    assert _step(sim_sandbox, ecs, arn, 2 * T)["status"] == "SUCCESSFUL"


def test_pause_hook_continued_with_rollback_rolls_back(
    sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]
) -> None:
    """ContinueServiceDeployment(ROLLBACK) at a PAUSE hook rolls back: blue is PRIMARY again, green's
    tasks are gone, and the rollback names the revision it went back to."""
    arn = _native_service(
        sim_sandbox,
        ecs,
        wiring,
        "sd-pause-rb",
        {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [PAUSE_HOOK]},
    )
    held = _step(sim_sandbox, ecs, arn, 2 * T)
    ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=_awaiting(held), action="ROLLBACK")
    assert _describe(ecs, arn)["status"] == "ROLLBACK_REQUESTED"
    assert _step(sim_sandbox, ecs, arn)["status"] == "ROLLBACK_IN_PROGRESS"
    done = _step(sim_sandbox, ecs, arn)
    assert done["status"] == "ROLLBACK_SUCCESSFUL"
    assert done["rollback"]["serviceRevisionArn"] == done["sourceServiceRevisions"][0]["arn"]
    assert "ContinueServiceDeployment" in done["statusReason"]
    assert _running(ecs, "sd-pause-rb") == [("PRIMARY", "sd-pause-rb:1", 2)]


def test_pause_hook_times_out_with_its_action(sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]) -> None:
    """A PAUSE hook nobody continues is TIMED_OUT at expiresAt and takes its timeout action (ROLLBACK)."""
    arn = _native_service(
        sim_sandbox,
        ecs,
        wiring,
        "sd-pause-to",
        {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0, "lifecycleHooks": [PAUSE_HOOK]},
    )
    held = _step(sim_sandbox, ecs, arn, 2 * T)
    expires = held["lifecycleHookDetails"][0]["expiresAt"]
    assert (expires - held["updatedAt"]).total_seconds() == 60 * 60
    assert _step(sim_sandbox, ecs, arn, 60 * 60)["status"] == "ROLLBACK_REQUESTED"


def test_lambda_hook_results_set_by_the_test(sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]) -> None:
    """A Lambda hook is asked again while it answers IN_PROGRESS, and its FAILED answer (set over the
    control API) rolls the deployment back before any production traffic moves."""
    hook = SMOKE + "-failing"
    config = {
        "strategy": "BLUE_GREEN",
        "bakeTimeInMinutes": 0,
        "lifecycleHooks": [
            {"hookTargetArn": hook, "roleArn": HOOK_ROLE, "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}
        ],
    }
    sim_sandbox.simulator.service_deployments.set_hook_result(hook, "IN_PROGRESS")
    arn = _native_service(sim_sandbox, ecs, wiring, "sd-lambda", config)
    for _ in range(3):
        waiting = _step(sim_sandbox, ecs, arn, 2 * T)
        assert _view(waiting) == ("IN_PROGRESS", "POST_TEST_TRAFFIC_SHIFT", 0.0, ["IN_PROGRESS"])
        assert waiting["lifecycleHookDetails"][0]["targetArn"] == hook
    request = urllib.request.Request(
        sim_sandbox.endpoint + "/_sandbox/hooks",
        data=json.dumps({"target": hook, "status": "FAILED"}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["status"] == "FAILED"
    failed = _step(sim_sandbox, ecs, arn)
    assert failed["status"] == "ROLLBACK_REQUESTED"
    assert (
        "lifecycle hook" in failed["statusReason"]
        and "POST_TEST_TRAFFIC_SHIFT failed" in failed["statusReason"]
    )
    assert _step(sim_sandbox, ecs, arn, 2 * T)["status"] == "ROLLBACK_SUCCESSFUL"
    invoked = [
        i for i in sim_sandbox.simulator.service_deployments.invocations if i["serviceDeploymentArn"] == arn
    ]
    assert len(invoked) >= 4 and {i["targetArn"] for i in invoked} == {hook}


# -- rollbacks ----------------------------------------------------------------------------------------


def test_alarm_rolls_back_at_the_next_alarm_poll(
    sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]
) -> None:
    """An alarm in deploymentConfiguration.alarms that goes into ALARM during the bake rolls the
    deployment back when ECS next polls it (every 60 s here), with the alarm named."""
    config = {
        "strategy": "BLUE_GREEN",
        "bakeTimeInMinutes": 10,
        "alarms": {"alarmNames": ["web-latency-p99"], "enable": True, "rollback": True},
    }
    cloudwatch = sim_sandbox.client("cloudwatch")
    arn = _native_service(sim_sandbox, ecs, wiring, "sd-alarm", config)
    baking = _step(sim_sandbox, ecs, arn, 2 * T)
    assert _view(baking)[1] == "BAKE_TIME" and baking["alarms"]["status"] == "MONITORING"
    cloudwatch.set_alarm_state(AlarmName="web-latency-p99", StateValue="ALARM", StateReason="test")
    try:
        assert _step(sim_sandbox, ecs, arn, 60 - 2 * T)["status"] == "IN_PROGRESS"  # polled on tick 1
        rolled = _step(sim_sandbox, ecs, arn, T)  # 60 s later
        assert rolled["status"] == "ROLLBACK_REQUESTED"
        assert rolled["alarms"] == {
            "status": "TRIGGERED",
            "alarmNames": ["web-latency-p99"],
            "triggeredAlarmNames": ["web-latency-p99"],
        }
        assert "web-latency-p99" in rolled["rollback"]["reason"]
        back = _step(sim_sandbox, ecs, arn)
        assert back["status"] == "ROLLBACK_IN_PROGRESS"
        assert back["targetServiceRevision"]["requestedProductionTrafficWeight"] == 0.0
        assert _step(sim_sandbox, ecs, arn)["status"] == "ROLLBACK_SUCCESSFUL"
    finally:
        cloudwatch.set_alarm_state(AlarmName="web-latency-p99", StateValue="OK", StateReason="test")
    service = ecs.describe_services(cluster="sd-alarm", services=["web"])["services"][0]
    assert service["taskDefinition"].endswith("sd-alarm:1")


def test_stop_with_rollback_during_the_canary_bake(
    sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]
) -> None:
    """StopServiceDeployment(ROLLBACK) during the canary bake sends all traffic back to blue on the next
    tick; a second stop is a ConflictException; an unknown ARN is ServiceDeploymentNotFoundException."""
    config = {
        "strategy": "CANARY",
        "bakeTimeInMinutes": 0,
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 10},
    }
    arn = _native_service(sim_sandbox, ecs, wiring, "sd-stop", config)
    assert _view(_step(sim_sandbox, ecs, arn, 60))[2] == 10.0
    assert (
        ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")["serviceDeploymentArn"]
        == arn
    )
    with pytest.raises(ClientError, match="ConflictException"):
        ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    with pytest.raises(ClientError, match="ServiceDeploymentNotFoundException"):
        ecs.stop_service_deployment(serviceDeploymentArn=arn + "x")
    assert _view(_step(sim_sandbox, ecs, arn))[:3] == (
        "ROLLBACK_IN_PROGRESS",
        "PRODUCTION_TRAFFIC_SHIFT",
        0.0,
    )
    done = _step(sim_sandbox, ecs, arn)
    assert done["status"] == "ROLLBACK_SUCCESSFUL" and "StopServiceDeployment" in done["rollback"]["reason"]
    assert _running(ecs, "sd-stop") == [("PRIMARY", "sd-stop:1", 2)]


def test_green_that_cannot_start_rolls_back(sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]) -> None:
    """Green tasks whose image cannot start fail the deployment after the failure threshold (3 tasks)
    and it rolls back with blue untouched."""
    arn = _native_service(
        sim_sandbox,
        ecs,
        wiring,
        "sd-broken",
        {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0},
        image="nginx:broken-1",
    )
    assert _step(sim_sandbox, ecs, arn, 3 * T)["status"] == "ROLLBACK_REQUESTED"
    assert _step(sim_sandbox, ecs, arn, 2 * T)["status"] == "ROLLBACK_SUCCESSFUL"
    assert _running(ecs, "sd-broken") == [("PRIMARY", "sd-broken:1", 2)]


# -- rolling deployments, listing and validation --------------------------------------------------------


def test_rolling_deployments_are_service_deployments_too(sim_sandbox: Sandbox, ecs: Any) -> None:
    """A rolling update is listed as a service deployment that becomes SUCCESSFUL; a broken one is
    ROLLBACK_SUCCESSFUL once the circuit breaker's rollback completes; status and createdAt filter the
    list, newest first, with pagination."""
    ecs.create_cluster(clusterName="sd-rolling")
    for image in ("nginx:1", "nginx:2", "nginx:broken-3"):
        ecs.register_task_definition(
            family="sd-rolling", containerDefinitions=[{"name": "app", "image": image, "memory": 64}]
        )
    breaker = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    ecs.create_service(
        cluster="sd-rolling",
        serviceName="web",
        taskDefinition="sd-rolling:1",
        desiredCount=1,
        deploymentConfiguration=breaker,
    )
    sim_sandbox.simulator.clock.advance(2 * T)
    ecs.update_service(cluster="sd-rolling", service="web", taskDefinition="sd-rolling:2")
    after = sim_sandbox.simulator.clock.now()
    sim_sandbox.simulator.clock.advance(2 * T)
    ecs.update_service(cluster="sd-rolling", service="web", taskDefinition="sd-rolling:3")
    sim_sandbox.simulator.clock.advance(3 * T)
    rolling_back = ecs.list_service_deployments(cluster="sd-rolling", service="web")["serviceDeployments"][0]
    assert rolling_back["status"] == "ROLLBACK_IN_PROGRESS"
    sim_sandbox.simulator.clock.advance(2 * T)
    listed = ecs.list_service_deployments(cluster="sd-rolling", service="web")["serviceDeployments"]
    assert [d["status"] for d in listed] == ["ROLLBACK_SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL"]
    described = _describe(ecs, listed[0]["serviceDeploymentArn"])
    assert described["deploymentCircuitBreaker"]["status"] == "TRIGGERED"
    assert (
        described["rollback"]["serviceRevisionArn"]
        == _describe(ecs, listed[1]["serviceDeploymentArn"])["targetServiceRevision"]["arn"]
    )
    assert "lifecycleStage" not in described

    only = ecs.list_service_deployments(
        cluster="sd-rolling", service="web", status=["SUCCESSFUL"], createdAt={"after": after}
    )
    assert [d["serviceDeploymentArn"] for d in only["serviceDeployments"]] == [
        listed[1]["serviceDeploymentArn"]
    ]
    page = ecs.list_service_deployments(cluster="sd-rolling", service="web", maxResults=2)
    assert len(page["serviceDeployments"]) == 2 and page["nextToken"]
    rest = ecs.list_service_deployments(
        cluster="sd-rolling", service="web", maxResults=2, nextToken=page["nextToken"]
    )
    assert [d["serviceDeploymentArn"] for d in rest["serviceDeployments"]] == [
        listed[2]["serviceDeploymentArn"]
    ]
    missing = ecs.describe_service_deployments(
        serviceDeploymentArns=[listed[0]["serviceDeploymentArn"] + "0"]
    )
    assert missing["failures"][0]["reason"] == "MISSING" and missing["serviceDeployments"] == []
    with pytest.raises(ClientError, match="ServiceNotFoundException"):
        ecs.list_service_deployments(cluster="sd-rolling", service="nope")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {
                "strategy": "BLUE_GREEN",
                "bakeTimeInMinutes": 1,
                "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            },
            "circuit breaker can only be used with the ROLLING",
        ),
        ({"strategy": "BLUE_GREEN"}, "bakeTimeInMinutes is required"),
        (
            {"strategy": "CANARY", "bakeTimeInMinutes": 1, "canaryConfiguration": {"canaryPercent": 0.05}},
            "canaryPercent",
        ),
        (
            {"strategy": "LINEAR", "bakeTimeInMinutes": 1, "linearConfiguration": {"stepPercent": 12.34}},
            "stepPercent",
        ),
        ({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1441}, "bakeTimeInMinutes must be between"),
        (
            {
                "strategy": "BLUE_GREEN",
                "bakeTimeInMinutes": 1,
                "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}],
            },
            "PAUSE hooks cannot be configured at the PRODUCTION_TRAFFIC_SHIFT",
        ),
        (
            {
                "strategy": "BLUE_GREEN",
                "bakeTimeInMinutes": 1,
                "lifecycleHooks": [{"hookTargetArn": SMOKE, "lifecycleStages": ["POST_SCALE_UP"]}],
            },
            "roleArn is required",
        ),
    ],
    ids=["breaker", "no-bake", "canary-percent", "step-percent", "bake-too-long", "pause-stage", "hook-role"],
)
def test_configurations_ecs_rejects_are_rejected(
    sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str], config: dict[str, Any], message: str
) -> None:
    """CreateService with a deployment configuration ECS refuses fails with InvalidParameterException
    and creates nothing."""
    ecs.create_cluster(clusterName="sd-invalid")
    ecs.register_task_definition(
        family="sd-invalid", containerDefinitions=[{"name": "app", "image": "x", "memory": 64}]
    )
    with pytest.raises(ClientError, match="InvalidParameterException") as raised:
        ecs.create_service(
            cluster="sd-invalid",
            serviceName="web",
            taskDefinition="sd-invalid",
            desiredCount=1,
            loadBalancers=_load_balancers(wiring),
            deploymentConfiguration=config,
        )
    assert message in str(raised.value)
    assert ecs.describe_services(cluster="sd-invalid", services=["web"])["services"] == []


def test_native_strategy_needs_the_advanced_load_balancer_configuration(
    sim_sandbox: Sandbox, ecs: Any, wiring: dict[str, str]
) -> None:
    """Switching an existing service to BLUE_GREEN is refused while its load balancer lacks the
    alternate target group, production listener rule and role."""
    ecs.create_cluster(clusterName="sd-switch")
    ecs.register_task_definition(
        family="sd-switch", containerDefinitions=[{"name": "app", "image": "x", "memory": 64}]
    )
    plain = [{"targetGroupArn": wiring["web-blue"], "containerName": "app", "containerPort": 8080}]
    ecs.create_service(
        cluster="sd-switch",
        serviceName="web",
        taskDefinition="sd-switch",
        desiredCount=1,
        loadBalancers=plain,
    )
    with pytest.raises(ClientError, match="advancedConfiguration with alternateTargetGroupArn"):
        ecs.update_service(
            cluster="sd-switch",
            service="web",
            deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1},
        )
    ecs.update_service(
        cluster="sd-switch",
        service="web",
        loadBalancers=_load_balancers(wiring),
        deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1},
    )
    service = ecs.describe_services(cluster="sd-switch", services=["web"])["services"][0]
    assert service["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
