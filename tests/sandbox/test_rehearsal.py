"""The sandbox as a rehearsal stage: a clock that runs fast (and an agent's clock that follows it), and
the HTTP hooks its seed names, answering as told."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta

import pytest

from agent.aws.clock import SandboxTime, endpoint_clock
from agent.sandbox.harness import CALM_START
from agent.sandbox.server import Sandbox
from agent.sandbox.simulator import SandboxClock


@pytest.fixture(scope="module")
def fast() -> Iterator[Sandbox]:
    with Sandbox(clock=SandboxClock(speed=20, start=CALM_START)) as running:
        running.serve_hooks(0)
        yield running


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_an_agent_on_a_fast_sandbox_follows_its_clock(fast: Sandbox) -> None:
    clock = endpoint_clock(fast.endpoint)
    assert isinstance(clock, SandboxTime) and clock.speed == 20
    assert abs(clock() - fast.simulator.clock.now()) < timedelta(seconds=20)
    fast.simulator.clock.advance(3600)
    clock.refresh = 0  # read the sandbox again at once
    assert abs(clock() - fast.simulator.clock.now()) < timedelta(seconds=20)


def test_other_endpoints_keep_the_machine_clock() -> None:
    assert endpoint_clock(None) is None
    assert endpoint_clock("https://ecs.eu-west-1.amazonaws.com") is None  # not loopback: never asked
    with socket.socket() as sock:  # a loopback port nobody answers on: not a sandbox
        sock.bind(("127.0.0.1", 0))
        assert endpoint_clock(f"http://127.0.0.1:{sock.getsockname()[1]}") is None


def test_the_seeds_hooks_answer_succeeded_until_told_otherwise(fast: Sandbox) -> None:
    assert fast.hooks is not None
    url = fast.hooks.url("smoke")
    assert _post(url, {"stage": "postTestTraffic"}) == (200, {"status": "SUCCEEDED"})
    answer = {"stage": "postTestTraffic", "status": "FAILED", "reason": "3 of 20 requests failed"}
    status, _ = _post(f"{fast.endpoint}/_sandbox/http-hooks", answer)
    assert status == 200
    assert _post(url, {"stage": "postTestTraffic"}) == (
        200,
        {"status": "FAILED", "reason": "3 of 20 requests failed"},
    )
    with urllib.request.urlopen(f"{fast.endpoint}/_sandbox/http-hooks", timeout=10) as response:
        calls = json.loads(response.read())["calls"]
    assert [(c["name"], c["stage"], c["answer"]["status"]) for c in calls] == [
        ("smoke", "postTestTraffic", "SUCCEEDED"),
        ("smoke", "postTestTraffic", "FAILED"),
    ]
    assert _post(f"{fast.endpoint}/_sandbox/http-hooks", {"stage": "x", "status": "MAYBE"})[0] == 400
