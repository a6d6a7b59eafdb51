"""Crash safety of the agent engine: SIGKILL in each phase of a canary, then a restart, finishes it once.

The agent runs in a subprocess (``gitops_story.py``'s driver: an Agent on the sandbox's clock, which it
moves to each wake-up, checking the traffic invariant after every tick). The sandbox holds one write
of the rollout (fault injection at /_sandbox/faults, the way test_crash.py holds UpdateService), the
test SIGKILLs the agent while it waits inside that call, releases the call (it never reaches AWS), and
starts the agent again on the same data directory. It must finish the rollout exactly once: each
write reaches AWS once in all (the sandbox counts what it served), one task set at the end, the
weights on it, the commit status success.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from gitops_story import EngineStory
from lossy_proxy import LossyProxy

from agent.sandbox.faults import Fault

DRIVER = Path(__file__).resolve().parent / "gitops_story.py"
WRITES = ("CreateTaskSet", "ModifyRule", "UpdateServicePrimaryTaskSet", "DeleteTaskSet")
# canary 10 % with a test rule: CreateTaskSet, ModifyRule(test -> green), ModifyRule(prod 90/10),
# ModifyRule(prod 0/100), UpdateServicePrimaryTaskSet(green), DeleteTaskSet(blue).
EXPECTED_WRITES = {"CreateTaskSet": 1, "ModifyRule": 3, "UpdateServicePrimaryTaskSet": 1, "DeleteTaskSet": 1}
PHASES = [
    ("CreateTaskSet", 0, "creating the green task set"),
    ("ModifyRule", 0, "test traffic to green"),
    ("ModifyRule", 1, "canary step 10 %"),
    ("ModifyRule", 2, "canary step 100 %"),
    ("UpdateServicePrimaryTaskSet", 0, "primary switch"),
    ("DeleteTaskSet", 0, "cleanup after the final bake"),
]


def _canary(name: str) -> dict[str, Any]:
    return {
        "type": "canary",
        "canary": {"percent": 10, "bake": "5m"},
        "bake": "10m",
        "rollbackOn": {"alarms": [{"name": f"{name}-5xx"}]},
    }


def _driver(story: EngineStory, data_dir: Path, endpoint: str | None = None) -> subprocess.Popen[str]:
    args = [
        f"file://{story.remote.git_dir}",
        str(data_dir),
        endpoint or story.sandbox.endpoint,
        story.sandbox.region,
        story.cluster,
        story.prod_rule,
        *([story.test_rule] if story.test_rule else []),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECS_GITOPS_"))}
    return subprocess.Popen(
        [sys.executable, str(DRIVER), *args],
        cwd=data_dir.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.mark.parametrize(("operation", "after", "phase"), PHASES, ids=[p for _, _, p in PHASES])
def test_sigkill_in_each_phase_then_restart_finishes_once(
    sim_sandbox: Any, tmp_path: Path, operation: str, after: int, phase: str
) -> None:
    """SIGKILL while the agent waits in one of the rollout's writes, then a restart: every write reaches
    AWS exactly once, the invariant holds on every tick, and the rollout ends with one task set."""
    name = f"crash{PHASES.index((operation, after, phase)) + 1}"
    story = EngineStory(sim_sandbox, tmp_path / name, name, _canary(name))
    story.create()
    sha = story.deploy("repo/web:2")
    served = {op: sim_sandbox.faults.served[op] for op in WRITES}
    data = tmp_path / name / "driver-data"

    sim_sandbox.faults.add(Fault(operation, action="hold", after=after))
    agent = _driver(story, data)
    try:
        deadline = time.monotonic() + 120
        while sim_sandbox.faults.held == 0:
            if agent.poll() is not None:
                pytest.fail(f"the agent finished without reaching {phase}: {agent.communicate()[0]}")
            assert time.monotonic() < deadline, f"the agent never reached {phase}"
            time.sleep(0.05)
        before_kill = story.labels(draining=True)
        agent.send_signal(signal.SIGKILL)
        agent.communicate(timeout=30)
    finally:
        sim_sandbox.faults.clear()
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == -signal.SIGKILL

    restarted = _driver(story, data)
    output = restarted.communicate(timeout=300)[0]
    assert restarted.returncode == 0, output
    last = _lines(output)[-1]
    assert (last["state"], last["description"]) == ("success", f"{story.family}:2 serving 100 %"), output

    writes = {op: sim_sandbox.faults.served[op] - served[op] for op in WRITES}
    assert writes == EXPECTED_WRITES, f"killed at {phase} with task sets {before_kill}"
    sim_sandbox.simulator.clock.advance(sim_sandbox.simulator.task_start_seconds)  # DRAINING goes
    assert story.labels(draining=True) == [(f"{story.family}:2", "PRIMARY", f"{story.name}-green")]
    snapshot = story.check()
    assert story.split(snapshot) == (0, 100) and story.split(snapshot, "test") == (0, 100)
    assert story.notes(sha)[story.context]["state"] == "success"
    assert story.revisions(story.family) == [f"{story.family}:1", f"{story.family}:2"]


@pytest.fixture(scope="module")
def proxy(sim_sandbox: Any) -> Any:
    lossy = LossyProxy(sim_sandbox.endpoint)
    yield lossy
    lossy.close()


@pytest.mark.parametrize("lose", [False, True], ids=["killed after it reached AWS", "answer lost"])
@pytest.mark.parametrize(("operation", "after", "phase"), PHASES, ids=[p for _, _, p in PHASES])
def test_a_write_that_reached_aws_is_not_repeated_after_a_kill_or_a_lost_answer(
    sim_sandbox: Any, proxy: LossyProxy, tmp_path: Path, operation: str, after: int, phase: str, lose: bool
) -> None:
    """The write reaches AWS, then the agent dies before its answer (and restarts), or lives on with the
    answer lost (botocore sends the same call again, AWS sees it twice; CreateTaskSet's clientToken makes
    the second one create nothing): the agent makes exactly the writes of an uninterrupted run, and the
    rollout ends as one does, one task set, all traffic on it, success."""
    proxy.reset()
    name = f"lost{PHASES.index((operation, after, phase)) + 1}{'l' if lose else 'k'}"
    story = EngineStory(sim_sandbox, tmp_path / name, name, _canary(name))
    story.create()
    sha = story.deploy("repo/web:2")
    served = {op: sim_sandbox.faults.served[op] for op in WRITES}
    data = tmp_path / name / "driver-data"

    proxy.arm(operation, "lose" if lose else "hold", after=after)
    agent = _driver(story, data, proxy.endpoint)
    if not lose:
        try:
            deadline = time.monotonic() + 120
            while proxy.held == 0:
                if agent.poll() is not None:
                    pytest.fail(f"the agent finished without reaching {phase}: {agent.communicate()[0]}")
                assert time.monotonic() < deadline, f"the agent never reached {phase}"
                time.sleep(0.05)
            agent.send_signal(signal.SIGKILL)
            agent.communicate(timeout=30)
        finally:
            proxy.clear()
            if agent.poll() is None:
                agent.kill()
        assert agent.returncode == -signal.SIGKILL
        agent = _driver(story, data, proxy.endpoint)
    output = agent.communicate(timeout=300)[0]
    proxy.clear()
    assert agent.returncode == 0, output
    assert proxy.lost[operation] == 1
    last = _lines(output)[-1]
    assert (last["state"], last["description"]) == ("success", f"{story.family}:2 serving 100 %"), output

    # The agent's calls (a botocore retry is the same call); ECS served one request more for a lost answer.
    assert {op: proxy.calls[op] for op in WRITES} == EXPECTED_WRITES
    requests = {op: sim_sandbox.faults.served[op] - served[op] for op in WRITES}
    assert requests == {op: n + int(lose and op == operation) for op, n in EXPECTED_WRITES.items()}
    sim_sandbox.simulator.clock.advance(sim_sandbox.simulator.task_start_seconds)  # DRAINING goes
    assert story.labels(draining=True) == [(f"{story.family}:2", "PRIMARY", f"{story.name}-green")]
    snapshot = story.check()
    assert story.split(snapshot) == (0, 100) and story.split(snapshot, "test") == (0, 100)
    assert story.notes(sha)[story.context]["state"] == "success"
    assert story.revisions(story.family) == [f"{story.family}:1", f"{story.family}:2"]
