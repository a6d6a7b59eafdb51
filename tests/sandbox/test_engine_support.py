"""What the agent engine needs from the sandbox: alarms set from tests and the CLI, Lambda Invoke served
by the sandbox, weighted listener rules, faults on any AWS operation, task sets that stabilise on the
clock, and the loopback hook receiver.

Everything goes over HTTP with real boto3 clients; the simulator runs on a manual clock (``sim_sandbox``).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from test_simulator import _http

from agent.sandbox.cli import main as sandbox_main
from agent.sandbox.faults import Fault
from agent.sandbox.hooks import SIGNATURE_HEADER, HookReceiver, signature
from agent.sandbox.lambdas import function_name
from agent.sandbox.server import Sandbox, SandboxError

T = 2.0  # sim_sandbox's task_start_seconds
REPO_ROOT = Path(__file__).resolve().parents[2]


def _alarm_state(sandbox: Sandbox, name: str) -> str:
    (alarm,) = sandbox.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return str(alarm["StateValue"])


# -- alarms ----------------------------------------------------------------------------------------


def test_set_alarm_changes_what_describe_alarms_reports(sim_sandbox: Sandbox) -> None:
    """Sandbox.set_alarm puts a seeded alarm in ALARM and back to OK, as DescribeAlarms then reports."""
    sim_sandbox.set_alarm("web-5xx", "ALARM", reason="5xx rate 12 %")
    (alarm,) = sim_sandbox.client("cloudwatch").describe_alarms(AlarmNames=["web-5xx"])["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "5xx rate 12 %")
    assert _alarm_state(sim_sandbox, "web-latency-p99") == "OK"
    sim_sandbox.set_alarm("web-5xx", "OK")
    assert _alarm_state(sim_sandbox, "web-5xx") == "OK"


def test_set_alarm_refuses_unknown_alarms_and_states(sim_sandbox: Sandbox) -> None:
    """An alarm that does not exist, or a state CloudWatch does not have, is a clear SandboxError."""
    with pytest.raises(SandboxError, match="no CloudWatch alarm named 'web-typo'"):
        sim_sandbox.set_alarm("web-typo", "ALARM")
    with pytest.raises(SandboxError, match="alarm state must be one of OK, ALARM, INSUFFICIENT_DATA"):
        sim_sandbox.set_alarm("web-5xx", "FIRING")


def test_cli_sets_an_alarm_of_a_running_sandbox(
    sim_sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ecs-gitops sandbox alarm NAME ALARM --endpoint URL` fires the alarm; an unknown name exits 1."""
    sim_sandbox.set_alarm("api-5xx", "OK")
    assert sandbox_main(["alarm", "api-5xx", "ALARM", "--endpoint", sim_sandbox.endpoint]) == 0
    assert capsys.readouterr().out == "alarm api-5xx: OK -> ALARM\n"
    assert _alarm_state(sim_sandbox, "api-5xx") == "ALARM"
    assert sandbox_main(["alarm", "api-typo", "OK", "--endpoint", sim_sandbox.endpoint]) == 1
    assert "no CloudWatch alarm named 'api-typo'" in capsys.readouterr().err
    sim_sandbox.set_alarm("api-5xx", "OK")


def test_cli_alarm_runs_as_a_user_runs_it(sim_sandbox: Sandbox) -> None:
    """The installed command finds the sandbox through AWS_ENDPOINT_URL and prints the change."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_ENDPOINT_URL"] = sim_sandbox.endpoint
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "sandbox", "alarm", "web-latency-p99", "ALARM"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "alarm web-latency-p99: OK -> ALARM\n", "")
    assert _alarm_state(sim_sandbox, "web-latency-p99") == "ALARM"
    sim_sandbox.set_alarm("web-latency-p99", "OK")


def test_cli_alarm_without_a_sandbox_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listening at the endpoint: exit 1 and an error naming the URL."""
    with HookReceiver() as receiver:  # a free port that is surely not the sandbox: closed right after
        port = receiver.port
    assert sandbox_main(["alarm", "web-5xx", "ALARM", "--endpoint", f"http://127.0.0.1:{port}"]) == 1
    assert f"http://127.0.0.1:{port}" in capsys.readouterr().err


# -- Lambda Invoke ---------------------------------------------------------------------------------


def test_lambda_invoke_answers_with_the_result_tests_set(sim_sandbox: Sandbox) -> None:
    """A result set by name answers Invoke by name or ARN, and every call's payload is recorded."""
    lam = sim_sandbox.client("lambda")
    arn = f"arn:aws:lambda:{sim_sandbox.region}:123456789012:function:smoke-ok"
    sim_sandbox.set_lambda_result("smoke-ok", "SUCCEEDED")
    out = lam.invoke(FunctionName=arn, Payload=json.dumps({"stage": "postTestTraffic"}).encode())
    assert (out["StatusCode"], out.get("FunctionError"), out["ExecutedVersion"]) == (200, None, "$LATEST")
    assert json.loads(out["Payload"].read()) == {"status": "SUCCEEDED"}

    sim_sandbox.set_lambda_result(arn, "FAILED", reason="smoke test: 3 of 20 requests failed")
    out = lam.invoke(FunctionName="smoke-ok", Payload=b'{"stage": "preProductionTraffic"}')
    assert json.loads(out["Payload"].read()) == {
        "status": "FAILED",
        "reason": "smoke test: 3 of 20 requests failed",
    }
    calls = sim_sandbox.lambda_calls("smoke-ok")
    assert [c["payload"] for c in calls] == [{"stage": "postTestTraffic"}, {"stage": "preProductionTraffic"}]
    assert calls[0]["at"] == sim_sandbox.simulator.clock.timestamp()  # sandbox time


def test_lambda_function_error_sets_the_header(sim_sandbox: Sandbox) -> None:
    """A function that raised: X-Amz-Function-Error and Lambda's error object as the payload."""
    sim_sandbox.set_lambda_result("smoke-raises", function_error="Unhandled", reason="KeyError: 'url'")
    out = sim_sandbox.client("lambda").invoke(FunctionName="smoke-raises", Payload=b"{}")
    assert (out["StatusCode"], out["FunctionError"]) == (200, "Unhandled")
    assert json.loads(out["Payload"].read()) == {
        "errorMessage": "KeyError: 'url'",
        "errorType": "Exception",
        "stackTrace": [],
    }


def test_lambda_control_route_over_http(sim_sandbox: Sandbox) -> None:
    """POST/GET/DELETE /_sandbox/lambda/{name}: set a result, read it with the calls, forget it; bad bodies
    are 400 with the reason."""
    status, reply = _http(sim_sandbox, "POST", "/_sandbox/lambda/smoke-http", {"status": "IN_PROGRESS"})
    assert (status, reply["function"], reply["result"]) == (
        200,
        "smoke-http",
        {"payload": {"status": "IN_PROGRESS"}},
    )
    status, reply = _http(
        sim_sandbox, "POST", "/_sandbox/lambda/smoke-http", {"payload": {"status": "SUCCEEDED", "extra": 1}}
    )
    assert reply["result"] == {"payload": {"status": "SUCCEEDED", "extra": 1}}
    sim_sandbox.client("lambda").invoke(FunctionName="smoke-http", InvocationType="Event", Payload=b"{}")
    status, reply = _http(sim_sandbox, "GET", "/_sandbox/lambda/smoke-http")
    assert [c["invocationType"] for c in reply["calls"]] == ["Event"]
    assert _http(sim_sandbox, "POST", "/_sandbox/lambda/smoke-http", {"status": "DONE"}) == (
        400,
        {"error": "status must be one of SUCCEEDED, FAILED, IN_PROGRESS"},
    )
    assert _http(sim_sandbox, "POST", "/_sandbox/lambda/smoke-http", {"status": "OK", "x": 1})[0] == 400
    status, reply = _http(sim_sandbox, "DELETE", "/_sandbox/lambda/smoke-http")
    assert (status, reply["result"], reply["calls"]) == (200, None, [])


def test_lambda_unknown_function_is_not_found(sim_sandbox: Sandbox) -> None:
    """Invoking a function nobody created or set a result for fails like Lambda does (404)."""
    with pytest.raises(ClientError) as caught:
        sim_sandbox.client("lambda").invoke(FunctionName="never-made", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "function:never-made" in str(caught.value)


def test_lambda_created_in_moto_succeeds_by_default(sim_sandbox: Sandbox) -> None:
    """A function created with CreateFunction answers SUCCEEDED without Docker until a result is set."""
    role = sim_sandbox.client("iam").get_role(RoleName="ecs-gitops-agent")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return {'status': 'SUCCEEDED'}\n")
    lam = sim_sandbox.client("lambda")
    lam.create_function(
        FunctionName="smoke-created",
        Runtime="python3.12",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": code.getvalue()},
    )
    out = lam.invoke(FunctionName="smoke-created", Payload=b'{"stage": "testTraffic"}')
    assert json.loads(out["Payload"].read()) == {"status": "SUCCEEDED"}


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("smoke", "smoke"),
        ("arn:aws:lambda:eu-west-1:123456789012:function:smoke", "smoke"),
        ("arn:aws:lambda:eu-west-1:123456789012:function:smoke:live", "smoke"),
        ("123456789012:function:smoke", "smoke"),
        ("smoke:live", "smoke"),
    ],
)
def test_function_names_are_normalised(ref: str, name: str) -> None:
    """Names, partial ARNs and qualified ARNs all mean the same function."""
    assert function_name(ref) == name


# -- listener rules and faults ---------------------------------------------------------------------


def _rules(sandbox: Sandbox) -> tuple[dict[str, str], dict[str, str]]:
    """Target groups and listener rules of the seed, by name."""
    elbv2 = sandbox.client("elbv2")
    groups = {
        g["TargetGroupName"]: g["TargetGroupArn"] for g in elbv2.describe_target_groups()["TargetGroups"]
    }
    rules: dict[str, str] = {}
    for balancer in elbv2.describe_load_balancers()["LoadBalancers"]:
        for listener in elbv2.describe_listeners(LoadBalancerArn=balancer["LoadBalancerArn"])["Listeners"]:
            arns = [r["RuleArn"] for r in elbv2.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]]
            for tags in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]:
                for tag in tags["Tags"]:
                    if tag["Key"] == "Name":
                        rules[tag["Value"]] = tags["ResourceArn"]
    return groups, rules


def _weighted(*pairs: tuple[str, int]) -> list[dict[str, Any]]:
    groups = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in pairs]
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}]


def test_weighted_forward_round_trips_through_describe_rules(sim_sandbox: Sandbox) -> None:
    """ModifyRule with a weighted ForwardConfig keeps the rule's conditions, and DescribeRules (by rule
    ARNs, across listeners, in one call) returns the weights written, zero weights included."""
    groups, rules = _rules(sim_sandbox)
    elbv2 = sim_sandbox.client("elbv2")
    blue, green = groups["api-blue"], groups["api-green"]
    elbv2.modify_rule(RuleArn=rules["api-prod"], Actions=_weighted((blue, 90), (green, 10)))
    elbv2.modify_rule(RuleArn=rules["api-test"], Actions=_weighted((blue, 0), (green, 100)))
    described = elbv2.describe_rules(RuleArns=[rules["api-prod"], rules["api-test"]])["Rules"]
    by_arn = {r["RuleArn"]: r for r in described}
    prod, test = by_arn[rules["api-prod"]], by_arn[rules["api-test"]]
    assert [
        (g["TargetGroupArn"], g["Weight"]) for g in prod["Actions"][0]["ForwardConfig"]["TargetGroups"]
    ] == [
        (blue, 90),
        (green, 10),
    ]
    assert [g["Weight"] for g in test["Actions"][0]["ForwardConfig"]["TargetGroups"]] == [0, 100]
    assert prod["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}]
    elbv2.modify_rule(RuleArn=rules["api-prod"], Actions=[{"Type": "forward", "TargetGroupArn": blue}])
    elbv2.modify_rule(RuleArn=rules["api-test"], Actions=[{"Type": "forward", "TargetGroupArn": green}])


def test_faults_hold_and_fail_other_services_operations(sim_sandbox: Sandbox) -> None:
    """A fault on ModifyRule (query protocol) answers in ELB's own error format and lets ``after``
    requests through first; a fault on Lambda Invoke (REST) fails it too; ``served`` counts only the
    requests that reached AWS."""
    groups, rules = _rules(sim_sandbox)
    elbv2 = sim_sandbox.client("elbv2", retries={"total_max_attempts": 1})
    plain = [{"Type": "forward", "TargetGroupArn": groups["web-blue"]}]
    served = sim_sandbox.faults.served["ModifyRule"]
    sim_sandbox.faults.add(Fault("ModifyRule", code="ThrottlingException", status=400, count=1, after=1))
    try:
        elbv2.modify_rule(RuleArn=rules["web-prod"], Actions=plain)  # let through
        with pytest.raises(ClientError) as caught:
            elbv2.modify_rule(RuleArn=rules["web-prod"], Actions=plain)
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"
        elbv2.modify_rule(RuleArn=rules["web-prod"], Actions=plain)  # count used up

        sim_sandbox.faults.add(Fault("Invoke", code="TooManyRequestsException", status=429, count=1))
        sim_sandbox.set_lambda_result("smoke-fault", "SUCCEEDED")
        with pytest.raises(ClientError) as caught:
            sim_sandbox.client("lambda", retries={"total_max_attempts": 1}).invoke(FunctionName="smoke-fault")
        assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
        assert sim_sandbox.lambda_calls("smoke-fault") == []
        assert sim_sandbox.faults.describe()["hits"] == {"ModifyRule": 1, "Invoke": 1}
        assert sim_sandbox.faults.describe()["served"]["ModifyRule"] == served + 2  # the failed one never ran
    finally:
        sim_sandbox.faults.clear()
        sim_sandbox.faults.hits.clear()


def test_a_held_modify_rule_never_reaches_elb(sim_sandbox: Sandbox) -> None:
    """A held ModifyRule waits (visible in GET /_sandbox/faults) and, once released, fails without
    changing the rule: what a crash test relies on."""
    groups, rules = _rules(sim_sandbox)
    elbv2 = sim_sandbox.client("elbv2", retries={"total_max_attempts": 1})
    status, _ = _http(sim_sandbox, "POST", "/_sandbox/faults", {"operation": "ModifyRule", "action": "hold"})
    assert status == 200
    errors: list[Exception] = []

    def modify() -> None:
        try:
            elbv2.modify_rule(
                RuleArn=rules["web-prod"],
                Actions=_weighted((groups["web-blue"], 50), (groups["web-green"], 50)),
            )
        except ClientError as exc:
            errors.append(exc)

    worker = threading.Thread(target=modify)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while _http(sim_sandbox, "GET", "/_sandbox/faults")[1]["held"] == 0:
            assert time.monotonic() < deadline, "ModifyRule was never held"
            time.sleep(0.01)
    finally:
        _http(sim_sandbox, "DELETE", "/_sandbox/faults")
        worker.join(timeout=30)
    assert len(errors) == 1
    (rule,) = sim_sandbox.client("elbv2").describe_rules(RuleArns=[rules["web-prod"]])["Rules"]
    assert rule["Actions"][0].get("TargetGroupArn") == groups["web-blue"]


# -- task sets on the clock ------------------------------------------------------------------------


def _external_service(sandbox: Sandbox, cluster: str, desired: int) -> tuple[Any, str]:
    ecs = sandbox.client("ecs")
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE"])
    ecs.create_service(
        cluster=cluster,
        serviceName="web",
        desiredCount=desired,
        deploymentController={"type": "EXTERNAL"},
    )
    arn = ecs.register_task_definition(
        family=cluster,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "web", "image": "nginx:1"}],
    )["taskDefinition"]["taskDefinitionArn"]
    return ecs, arn


def _task_set_view(ecs: Any, cluster: str) -> list[tuple[str, int, int, int, str]]:
    service = ecs.describe_services(cluster=cluster, services=["web"])["services"][0]
    return [
        (
            ts["status"],
            ts["computedDesiredCount"],
            ts["runningCount"],
            ts["pendingCount"],
            ts["stabilityStatus"],
        )
        for ts in service["taskSets"]
    ]


def test_desired_count_change_restabilises_task_sets_on_the_clock(sim_sandbox: Sandbox) -> None:
    """A new desiredCount makes a steady task set STABILIZING at once (computedDesiredCount follows), and
    STEADY_STATE again one task start later per missing task; scaling down is steady on the next tick."""
    ecs, taskdef = _external_service(sim_sandbox, "sim-engine-scale", 2)
    task_set = ecs.create_task_set(
        cluster="sim-engine-scale",
        service="web",
        taskDefinition=taskdef,
        launchType="FARGATE",
        externalId="a",
    )["taskSet"]
    ecs.update_service_primary_task_set(
        cluster="sim-engine-scale", service="web", primaryTaskSet=task_set["taskSetArn"]
    )
    sim_sandbox.simulator.clock.advance(2 * T)
    assert _task_set_view(ecs, "sim-engine-scale") == [("PRIMARY", 2, 2, 0, "STEADY_STATE")]

    ecs.update_service(cluster="sim-engine-scale", service="web", desiredCount=3)
    assert _task_set_view(ecs, "sim-engine-scale") == [("PRIMARY", 3, 2, 1, "STABILIZING")]
    sim_sandbox.simulator.clock.advance(T)
    assert _task_set_view(ecs, "sim-engine-scale") == [("PRIMARY", 3, 3, 0, "STEADY_STATE")]

    ecs.update_task_set(
        cluster="sim-engine-scale",
        service="web",
        taskSet=task_set["taskSetArn"],
        scale={"value": 50, "unit": "PERCENT"},
    )
    assert _task_set_view(ecs, "sim-engine-scale") == [("PRIMARY", 2, 3, 0, "STABILIZING")]
    sim_sandbox.simulator.clock.advance(T)
    assert _task_set_view(ecs, "sim-engine-scale") == [("PRIMARY", 2, 2, 0, "STEADY_STATE")]


def test_broken_green_never_stabilises_while_blue_stays_steady(sim_sandbox: Sandbox) -> None:
    """Next to a steady blue task set, a green one on a broken image stays STABILIZING with every task
    pending, however long the clock runs: the engine must never send it traffic."""
    ecs, good = _external_service(sim_sandbox, "sim-engine-broken", 2)
    broken = ecs.register_task_definition(
        family="sim-engine-broken",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "web", "image": "nginx:broken-1"}],
    )["taskDefinition"]["taskDefinitionArn"]
    blue = ecs.create_task_set(
        cluster="sim-engine-broken", service="web", taskDefinition=good, launchType="FARGATE", externalId="b"
    )["taskSet"]
    ecs.update_service_primary_task_set(
        cluster="sim-engine-broken", service="web", primaryTaskSet=blue["taskSetArn"]
    )
    ecs.create_task_set(
        cluster="sim-engine-broken",
        service="web",
        taskDefinition=broken,
        launchType="FARGATE",
        externalId="g",
    )
    sim_sandbox.simulator.clock.advance(30 * T)
    assert _task_set_view(ecs, "sim-engine-broken") == [
        ("PRIMARY", 2, 2, 0, "STEADY_STATE"),
        ("ACTIVE", 2, 0, 2, "STABILIZING"),
    ]


def test_clock_route_reads_sandbox_time(sim_sandbox: Sandbox) -> None:
    """GET /_sandbox/clock is the sandbox's now (what an agent in another process can run on)."""
    status, reply = _http(sim_sandbox, "GET", "/_sandbox/clock")
    clock = sim_sandbox.simulator.clock
    speed = 0 if clock.manual else clock.speed  # 0: a clock that only moves when advanced
    assert (status, reply) == (200, {"now": clock.now().isoformat(), "speed": speed})


# -- the hook receiver -----------------------------------------------------------------------------


def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=raw, method="POST", headers=headers or {})
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_hook_receiver_answers_per_stage_and_records_calls() -> None:
    """Every stage answers SUCCEEDED until a test sets another answer; each request is recorded with its
    body and headers."""
    with HookReceiver() as receiver:
        body = {
            "service": "web",
            "cluster": "prod",
            "sha": "a" * 40,
            "stage": "postTestTraffic",
            "weights": {},
        }
        assert _post(receiver.url("smoke"), body) == (200, {"status": "SUCCEEDED"})
        receiver.answer("postTestTraffic", "FAILED", reason="smoke test: 3 of 20 requests failed")
        assert _post(receiver.url("smoke"), body) == (
            200,
            {"status": "FAILED", "reason": "smoke test: 3 of 20 requests failed"},
        )
        receiver.answer("testTraffic", "IN_PROGRESS")
        assert _post(receiver.url("smoke"), {**body, "stage": "testTraffic"}) == (
            200,
            {"status": "IN_PROGRESS"},
        )
        assert _post(receiver.url("smoke"), {**body, "stage": "preScaleUp"}) == (200, {"status": "SUCCEEDED"})
        calls = receiver.calls(stage="postTestTraffic")
        assert [c.answer for c in calls] == [
            {"status": "SUCCEEDED"},
            {"status": "FAILED", "reason": "smoke test: 3 of 20 requests failed"},
        ]
        assert calls[0].body == body and calls[0].name == "smoke"
        assert calls[0].headers["Content-Type"] == "application/json"
        assert receiver.stages() == ["postTestTraffic", "postTestTraffic", "testTraffic", "preScaleUp"]
        receiver.reset()
        assert receiver.calls() == []


def test_hook_receiver_verifies_the_signature() -> None:
    """With a secret, only a body signed with it is answered; a missing or wrong signature gets 401 and
    is still recorded."""
    with HookReceiver(secret="s3cret") as receiver:
        raw = json.dumps({"stage": "preScaleUp", "service": "web"}).encode()
        good = {SIGNATURE_HEADER: signature("s3cret", raw)}
        assert _post(receiver.url(), raw, good) == (200, {"status": "SUCCEEDED"})
        assert _post(receiver.url(), raw)[0] == 401
        assert _post(receiver.url(), raw, {SIGNATURE_HEADER: signature("other", raw)})[0] == 401
        tampered = raw.replace(b"web", b"api")
        assert _post(receiver.url(), tampered, good)[0] == 401
        assert [c.http_status for c in receiver.calls()] == [200, 401, 401, 401]
        assert receiver.calls()[0].headers[SIGNATURE_HEADER] == signature("s3cret", raw)
        assert signature("s3cret", raw).startswith("sha256=") and len(signature("s3cret", raw)) == 71


def test_hook_receiver_bad_requests_and_broken_endpoints() -> None:
    """Unknown paths are 404, a body without a stage is 400, and an answer with an HTTP status other than
    200 simulates an endpoint that is down."""
    with HookReceiver() as receiver:
        assert _post(f"http://127.0.0.1:{receiver.port}/other", {"stage": "x"})[0] == 404
        assert _post(receiver.url(), b"not json")[0] == 400
        assert _post(receiver.url(), {"service": "web"})[0] == 400
        receiver.answer("postScaleUp", http_status=503)
        assert _post(receiver.url(), {"stage": "postScaleUp"}) == (503, {})
        with pytest.raises(ValueError, match="status must be one of"):
            receiver.answer("postScaleUp", "OK")
        assert receiver.stages() == []
