"""Lambda lifecycle hooks (agent/engines/hooks.py) invoked through the agent's own AWS client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent.aws.clients import Aws
from agent.engines.hooks import HookCall, HookCaller
from agent.rollout.progressive import Hook

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:web-smoke"
CALL = HookCall("web", "prod", "b" * 40, "preProductionTraffic", (("tg-a", 100), ("tg-b", 0)), "arn:td/web:5")


def _caller(sandbox: Any) -> HookCaller:
    aws = Aws(region=sandbox.region, endpoint_url=sandbox.endpoint)
    return HookCaller(lambda_client=lambda: aws.client("lambda"), env={})


def _hook(arn: str = ARN) -> Hook:
    return Hook("preProductionTraffic", None, arn)


@pytest.mark.parametrize(
    ("result", "status", "reason"),
    [
        ({"status": "SUCCEEDED"}, "SUCCEEDED", ""),
        ({"status": "FAILED", "reason": "p99 too high"}, "FAILED", "p99 too high"),
        ({"status": "IN_PROGRESS"}, "IN_PROGRESS", ""),
        (
            {"function_error": "Unhandled", "reason": "KeyError: 'x'"},
            "FAILED",
            "function error: KeyError: 'x'",
        ),
    ],
)
def test_the_function_result_is_the_hook_answer(
    sim_sandbox: Any, result: dict[str, Any], status: str, reason: str
) -> None:
    """The function gets the hook JSON (RequestResponse) and its result, or its error, is the answer."""
    sim_sandbox.set_lambda_result(ARN, **result)
    state = _caller(sim_sandbox).call(_hook(), CALL, None, NOW)
    assert (state.status, state.reason) == (status, reason)
    last = sim_sandbox.lambda_calls(ARN)[-1]
    assert last["invocationType"] == "RequestResponse"
    assert last["payload"]["stage"] == "preProductionTraffic"
    assert last["payload"]["weights"] == {"tg-a": 100, "tg-b": 0}


def test_a_function_that_does_not_exist_fails_the_hook(sim_sandbox: Any) -> None:
    """Lambda refuses the invoke (404): asking again would not help, so the hook FAILED with the reason."""
    state = _caller(sim_sandbox).call(_hook(ARN + "-missing"), CALL, None, NOW)
    assert state.status == "FAILED"
    assert state.reason.startswith("invoke refused: ResourceNotFoundException")
