"""Statuses that could not be written are kept, retried and seen, and metrics tell the truth at each phase.

A canary rollout (the agent engine on the sim sandbox, a fake clock) reports to FakeGitHub. The host is
killed for a whole rollout, or the token is wrong until someone fixes the file: /readyz says "degraded"
and the outbox metric counts what waits; once the host answers, each final status lands exactly once,
in order. The traffic-weight and rollout metrics are asserted at each phase of a canary.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gitops_story import EngineStory
from prometheus_client.parser import text_string_to_metric_families

from agent.sandbox.git_hosts import FakeGitHub
from agent.status.model import AGGREGATE

TOKEN_ENV = "ECS_GITOPS_TEST_STATUS_TOKEN"
_names = itertools.count(1)


def _canary(name: str) -> dict[str, Any]:
    return {
        "type": "canary",
        "canary": {"percent": 10, "bake": "5m"},
        "bake": "10m",
        "rollbackOn": {"alarms": [{"name": f"{name}-5xx"}]},
    }


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        yield fake


def _story(sandbox: Any, tmp_path: Path, github: FakeGitHub, token_file: Path | None = None) -> EngineStory:
    name = f"sd{next(_names)}"
    story = EngineStory(sandbox, tmp_path / name, name, _canary(name))
    gh = replace(
        story.config.status.github,
        repository=github.repository,
        api_url=github.url,
        token_env=TOKEN_ENV,
        token_file=str(token_file) if token_file else None,
    )
    story.config = replace(story.config, status=replace(story.config.status, publisher="github", github=gh))
    story.agent = story.new_agent()
    story.agent.serve(port=0)
    story.create()
    return story


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _metrics(story: EngineStory) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert story.agent.server is not None
    status, raw = _get(story.agent.server.url + "/metrics")
    assert status == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(raw.decode())
        for s in family.samples
    }


def _value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def _readyz(story: EngineStory) -> tuple[int, dict[str, Any]]:
    assert story.agent.server is not None
    status, raw = _get(story.agent.server.url + "/readyz")
    return status, json.loads(raw)


def _rollout_while_undelivered(story: EngineStory) -> tuple[str, list[tuple[int, dict]], list[float]]:
    """Deploy web:2 and run it to the end; (sha, /readyz answers, outbox sizes) seen after each tick."""
    sha = story.deploy("repo/web:2")
    seen: list[tuple[int, dict]] = []
    pending: list[float] = []

    def look(result: Any) -> bool:
        seen.append(_readyz(story))
        pending.append(_value(_metrics(story), "ecs_gitops_status_outbox_pending"))
        return result.wake_at is None

    story.run(until=look)
    assert story.status() == ("success", f"{story.family}:2 serving 100 %") or story.status()[0] == "success"
    return sha, seen, pending


def _assert_delivered_once_in_order(
    story: EngineStory, github: FakeGitHub, sent_before: int, sha: str
) -> None:
    """After the host is back: each (sha, context) written once, the final status of the rollout, in the
    order the agent queued them (services before their aggregate), and nothing left waiting."""
    story.advance(600)  # past any backoff
    story.tick()  # reports nothing new, and flushes the outbox
    assert story.agent.outbox.pending() == []
    after = github.history[sent_before:]
    keys = [(h["sha"], h["context"]) for h in after]
    assert len(keys) == len(set(keys)), f"a status was written twice: {keys}"
    final = story.results[-2].statuses
    assert github.statuses[sha][story.context]["state"] == final[story.context].state == "success"
    assert github.statuses[sha][story.context]["description"] == final[story.context].description
    assert github.statuses[sha][AGGREGATE]["state"] == "success"
    mine = [h["context"] for h in after if h["sha"] == sha]
    assert mine == [story.context, AGGREGATE]
    status, body = _readyz(story)
    assert status == 200 and body["degraded"] is None
    assert _value(_metrics(story), "ecs_gitops_status_outbox_pending") == 0


def test_a_github_down_for_a_whole_rollout_gets_every_final_status_once(
    sim_sandbox: Any, tmp_path: Path, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, github.token)
    story = _story(sim_sandbox, tmp_path, github)
    sent_before = len(github.history)
    github.kill()

    sha, seen, pending = _rollout_while_undelivered(story)

    assert len(github.history) == sent_before  # nothing got through while it was down
    assert all(status == 200 for status, _ in seen)  # the rollout went on: still ready
    assert all(body["degraded"].startswith("degraded: statuses undelivered for ") for _, body in seen[1:])
    assert seen[-1][1]["statusesUndeliveredSeconds"] > 600  # the canary bake and the final bake
    assert all(n >= 2 for n in pending)  # the service's status and the aggregate wait
    failures = _value(
        _metrics(story), "ecs_gitops_status_publish_failures_total", provider="github", reason="unreachable"
    )
    assert failures >= 3

    github.revive()
    _assert_delivered_once_in_order(story, github, sent_before, sha)


def test_a_wrong_token_is_retried_until_the_file_is_fixed(
    sim_sandbox: Any, tmp_path: Path, github: FakeGitHub
) -> None:
    token_file = tmp_path / "github-token"
    token_file.write_text(github.token + "\n")
    story = _story(sim_sandbox, tmp_path, github, token_file)
    sent_before = len(github.history)
    token_file.write_text("ghp_revoked\n")  # rotated badly: every write gets 401

    sha, seen, pending = _rollout_while_undelivered(story)

    assert len(github.history) == sent_before
    assert all(body["degraded"] for _, body in seen[1:]) and all(n >= 2 for n in pending)
    auth = _value(
        _metrics(story), "ecs_gitops_status_publish_failures_total", provider="github", reason="auth"
    )
    assert auth >= 3

    token_file.write_text(github.token + "\n")  # fixed: read again at the next attempt
    _assert_delivered_once_in_order(story, github, sent_before, sha)


def test_metrics_follow_each_phase_of_a_canary(
    sim_sandbox: Any, tmp_path: Path, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Traffic weight and rollout counters at 10 %, in the final bake, at success and after a rollback."""
    monkeypatch.setenv(TOKEN_ENV, github.token)
    story = _story(sim_sandbox, tmp_path, github)
    web = {"cluster": story.cluster, "service": "web"}
    m = _metrics(story)
    assert _value(m, "ecs_gitops_traffic_weight_percent", **web) == 100  # the first deploy
    assert _value(m, "ecs_gitops_rollouts_total", result="started", strategy="canary") == 1
    assert _value(m, "ecs_gitops_rollouts_total", result="succeeded", strategy="canary") == 1

    story.deploy("repo/web:2")
    story.run(until=lambda r: "canary 10 % baking" in story.status(r)[1])
    m = _metrics(story)
    assert _value(m, "ecs_gitops_traffic_weight_percent", **web) == 10
    assert _value(m, "ecs_gitops_rollouts_total", result="started", strategy="canary") == 2

    story.run(until=lambda r: "final bake" in story.status(r)[1])
    m = _metrics(story)
    assert _value(m, "ecs_gitops_traffic_weight_percent", **web) == 100
    assert _value(m, "ecs_gitops_rollouts_total", result="succeeded", strategy="canary") == 1

    story.run()
    m = _metrics(story)
    assert story.status()[0] == "success"
    assert _value(m, "ecs_gitops_traffic_weight_percent", **web) == 100
    assert _value(m, "ecs_gitops_rollouts_total", result="succeeded", strategy="canary") == 2
    assert _value(m, "ecs_gitops_commit_to_deployed_seconds_count") >= 1
    assert _value(m, "process_cpu_seconds_total") > 0 and _value(m, "python_info", **_python_labels(m)) == 1

    story.deploy("repo/web:3")
    story.run(until=lambda r: "canary 10 % baking" in story.status(r)[1])
    assert _value(_metrics(story), "ecs_gitops_traffic_weight_percent", **web) == 10
    story.sandbox.set_alarm(f"{story.name}-5xx", "ALARM", reason="5xx above 1 %")
    try:
        story.tick()
        m = _metrics(story)
        assert story.status()[0] == "failure"
        assert _value(m, "ecs_gitops_traffic_weight_percent", **web) == 0
        assert _value(m, "ecs_gitops_rollouts_total", result="started", strategy="canary") == 3
        assert _value(m, "ecs_gitops_rollouts_total", result="failed", strategy="canary") == 1
    finally:
        story.sandbox.set_alarm(f"{story.name}-5xx", "OK")


def _python_labels(metrics: dict) -> dict[str, str]:
    for (name, labels), _ in metrics.items():
        if name == "python_info":
            return dict(labels)
    raise AssertionError("no python_info")
