"""The agent's HTTP endpoints over real HTTP: health, readiness driven by a fake clock, metrics after a
rollout, and the GitHub and GitLab webhooks (signatures, size cap, and the tick they trigger)."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from gitops_story import Story
from prometheus_client.parser import text_string_to_metric_families

from agent.http.metrics import Metrics
from agent.http.server import MAX_BODY, AgentServer, Endpoints, Readiness, github_signature

SECRET = "s3cret-for-tests"
WORKER_TD = "taskdefs/worker.yaml"


def _request(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _json(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, raw = _request(url, body, headers)
    return status, json.loads(raw)


def _metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, raw = _request(url + "/metrics")
    assert status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(raw.decode())
        for sample in family.samples
    }


def _value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def _wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def story(sim_sandbox: Any, tmp_path: Path) -> Iterator[Story]:
    sim_sandbox.reset()
    sim_sandbox.seed(Path(__file__).resolve().parents[2] / "manifests-example" / "sandbox-seed.yaml")
    story = Story(sim_sandbox, tmp_path)
    story.agent.serve(port=0)
    yield story
    assert story.agent.server is not None
    story.agent.server.stop()


# -- health and readiness --------------------------------------------------------------------------------


def test_healthz_answers_200_while_the_process_is_up(story: Story) -> None:
    """/healthz answers 200 with a JSON body as soon as the server runs, before any tick."""
    assert _json(story.agent.server.url + "/healthz") == (200, {"status": "ok"})


def test_readyz_turns_503_when_ticks_stall_and_200_when_they_resume(story: Story) -> None:
    """/readyz is 503 until the first good tick, 200 up to three poll intervals after the last good tick,
    503 after, and a failing tick does not count as good; the body says why."""
    url = story.agent.server.url + "/readyz"
    status, body = _json(url)
    assert status == 503 and body["lastGoodTick"] is None and "no tick has completed" in body["reason"]
    story.commit("deploy")
    assert story.agent.tick() is not None
    assert _json(url)[0] == 200
    story.clock.advance(180)  # exactly three 60 s intervals: still ready
    status, body = _json(url)
    assert status == 200 and body["secondsSinceLastGoodTick"] == 180 and body["limitSeconds"] == 180
    story.clock.advance(1)
    status, body = _json(url)
    assert status == 503 and body["ready"] is False
    assert body["reason"].startswith("the last good tick was 181s ago (over 180s")
    # The repository goes away: the tick reconciles the last commit fetched (a rollout goes on), but it
    # is not a good tick: readiness stays 503.
    moved = Path(story.remote.git_dir).with_name("moved.git")
    shutil.move(story.remote.git_dir, moved)
    assert story.agent.tick() is not None
    assert _json(url)[0] == 503
    shutil.move(moved, story.remote.git_dir)
    assert story.agent.tick() is not None
    status, body = _json(url)
    assert status == 200 and body["secondsSinceLastGoodTick"] == 0
    assert _value(_metrics(story.agent.server.url), "ecs_gitops_ticks_total", result="error") == 1


# -- metrics ---------------------------------------------------------------------------------------------


def test_metrics_after_a_first_deploy_and_an_image_bump(story: Story) -> None:
    """After a deploy and a bump, /metrics counts ticks, rollouts by result and strategy, AWS calls by
    operation, the traffic weight per service and the commit-to-deployed time, with exact values."""
    url = story.agent.server.url
    story.commit("deploy manifests-example")
    story.settle()
    m = _metrics(url)
    for strategy, n in (("rolling", 3), ("canary", 1), ("blueGreen", 1)):
        assert _value(m, "ecs_gitops_rollouts_total", result="started", strategy=strategy) == n
        assert _value(m, "ecs_gitops_rollouts_total", result="succeeded", strategy=strategy) == n
    assert _value(m, "ecs_gitops_traffic_weight_percent", cluster="prod", service="worker") == 100
    assert _value(m, "ecs_gitops_commit_to_deployed_seconds_count") == 5

    committed = story.clock.now()
    bump = story.commit("worker 1.9.1", {WORKER_TD: ("worker:1.9.0", "worker:1.9.1")})
    first = story.agent.tick()
    assert first is not None and first.outcome == "applied"
    m = _metrics(url)
    assert _value(m, "ecs_gitops_traffic_weight_percent", cluster="prod", service="worker") == 0
    assert _value(m, "ecs_gitops_rollouts_total", result="started", strategy="rolling") == 4
    story.settle()
    deployed = story.clock.now()
    assert story.running("prod", "worker") == "worker:2" and bump

    m = _metrics(url)
    assert _value(m, "ecs_gitops_rollouts_total", result="succeeded", strategy="rolling") == 4
    assert _value(m, "ecs_gitops_rollouts_total", result="failed", strategy="rolling") == 0
    assert _value(m, "ecs_gitops_traffic_weight_percent", cluster="prod", service="worker") == 100
    assert _value(m, "ecs_gitops_commit_to_deployed_seconds_count") == 6
    bump_seconds = (deployed - committed).total_seconds()
    assert bump_seconds > 0
    before_bump = _value(m, "ecs_gitops_commit_to_deployed_seconds_sum") - bump_seconds
    assert before_bump >= 0
    counts = story.agent.aws.counter.counts
    assert counts["ecs.RegisterTaskDefinition"] == 6  # five families, then the bump
    for key, n in counts.items():
        service, operation = key.split(".", 1)
        assert _value(m, "ecs_gitops_aws_calls_total", service=service, operation=operation) == n
    ticks = sum(v for (name, _), v in m.items() if name == "ecs_gitops_ticks_total")
    assert ticks == _value(m, "ecs_gitops_tick_duration_seconds_count") > 2
    # Four ticks applied: the first deploy twice (web dependsOn api, so it starts once api rolled out),
    # the agent engine's next tick pointing web's test listener rule at its first task set's target group
    # (the seed forwards it to web-green, which has no task set), and the bump.
    assert _value(m, "ecs_gitops_ticks_total", result="applied") == 4
    assert _value(m, "ecs_gitops_drifted_services") == 0
    assert _value(m, "ecs_gitops_last_good_tick_timestamp_seconds") == deployed.timestamp()


def test_commit_to_deployed_is_the_time_from_commit_to_success() -> None:
    """The histogram observes, for one rollout, exactly the seconds between its commit and its success."""
    from agent.http.metrics import ServiceView
    from agent.rollout.decisions import RolloutRecord

    metrics = Metrics()
    t0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    started = RolloutRecord("abc", "F2", "in_progress", t0.isoformat())
    done = replace(started, result="succeeded")
    later = t0.replace(minute=3)
    metrics.services([ServiceView("prod", "web", "pending", "canary", started)], t0, lambda sha: None)
    metrics.services([ServiceView("prod", "web", "success", "canary", done)], later, lambda sha: t0)
    sample = metrics.registry.get_sample_value
    assert sample("ecs_gitops_commit_to_deployed_seconds_sum") == 180.0
    assert sample("ecs_gitops_commit_to_deployed_seconds_count") == 1
    assert sample("ecs_gitops_rollouts_total", {"result": "started", "strategy": "canary"}) == 1
    assert sample("ecs_gitops_rollouts_total", {"result": "succeeded", "strategy": "canary"}) == 1


# -- webhooks --------------------------------------------------------------------------------------------


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AgentServer, list[int], dict]]:
    """A server whose webhooks call a fake trigger, and a settable secret."""
    triggered: list[int] = []
    secret = {"value": SECRET}
    endpoints = Endpoints(
        Readiness(60, lambda: datetime.now(UTC)),
        Metrics(),
        trigger=lambda: triggered.append(1),
        secret=lambda: secret["value"],
        branch="main",
    )
    with AgentServer(endpoints, "127.0.0.1", 0) as server:
        yield server, triggered, secret


def _github(body: bytes, event: str = "push", signature: str | None = "good", **headers: str) -> dict:
    out = {"X-GitHub-Event": event, "Content-Type": "application/json", **headers}
    if signature == "good":
        out["X-Hub-Signature-256"] = github_signature(SECRET, body)
    elif signature is not None:
        out["X-Hub-Signature-256"] = signature
    return out


PUSH_MAIN = json.dumps({"ref": "refs/heads/main", "after": "0" * 40}).encode()
PUSH_OTHER = json.dumps({"ref": "refs/heads/feature"}).encode()
GITLAB_PUSH = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Push Hook"}
OTHER_SECRET = github_signature("other", PUSH_MAIN)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "fired"),
    [
        ("/webhook/github", PUSH_MAIN, _github(PUSH_MAIN), 200, True),
        ("/webhook/github", PUSH_MAIN, _github(PUSH_MAIN, signature=None), 401, False),
        ("/webhook/github", PUSH_MAIN, _github(PUSH_MAIN, signature="sha256=" + "0" * 64), 401, False),
        ("/webhook/github", PUSH_MAIN, _github(PUSH_MAIN, signature=OTHER_SECRET), 401, False),
        ("/webhook/github", b'{"zen": "hi"}', _github(b'{"zen": "hi"}', event="ping"), 200, False),
        ("/webhook/github", PUSH_OTHER, _github(PUSH_OTHER), 200, False),
        (
            "/webhook/github",
            urlencode({"payload": PUSH_MAIN.decode()}).encode(),
            _github(
                urlencode({"payload": PUSH_MAIN.decode()}).encode(),
                **{"Content-Type": "application/x-www-form-urlencoded"},
            ),
            200,
            True,
        ),
        ("/webhook/gitlab", PUSH_MAIN, GITLAB_PUSH, 200, True),
        ("/webhook/gitlab", PUSH_MAIN, {**GITLAB_PUSH, "X-Gitlab-Token": "nope"}, 401, False),
        ("/webhook/gitlab", PUSH_MAIN, {"X-Gitlab-Event": "Push Hook"}, 401, False),
        ("/webhook/gitlab", PUSH_OTHER, GITLAB_PUSH, 200, False),
        ("/webhook/gitlab", PUSH_MAIN, {**GITLAB_PUSH, "X-Gitlab-Event": "Tag Push Hook"}, 200, False),
    ],
    ids=[
        "github-push",
        "github-no-signature",
        "github-wrong-signature",
        "github-other-secret",
        "github-ping",
        "github-other-branch",
        "github-form-encoded",
        "gitlab-push",
        "gitlab-wrong-token",
        "gitlab-no-token",
        "gitlab-other-branch",
        "gitlab-tag-push",
    ],
)
def test_webhooks_verify_and_trigger(
    hooks, path: str, body: bytes, headers: dict, status: int, fired: bool
) -> None:
    """A push to the tracked branch with a valid signature or token triggers a tick; anything unsigned is
    401 and triggers nothing; other events and branches are acknowledged and ignored."""
    server, triggered, _ = hooks
    got, answer = _json(server.url + path, body, headers)
    assert (got, bool(triggered)) == (status, fired), answer
    if status == 200:
        assert answer["triggered"] is fired


@pytest.mark.parametrize("path", ["/webhook/github", "/webhook/gitlab"])
def test_webhook_body_over_1_mib_is_refused_with_413(hooks, path: str) -> None:
    """A body over 1 MiB is answered 413 before its signature is even looked at, and triggers nothing."""
    server, triggered, _ = hooks
    body = b"x" * (MAX_BODY + 1)
    headers = {**_github(body), **GITLAB_PUSH}
    status, answer = _json(server.url + path, body, headers)
    assert status == 413 and "over 1048576 bytes" in answer["error"]
    assert triggered == []
    assert _json(server.url + path, PUSH_MAIN, {**headers, **_github(PUSH_MAIN)})[0] == 200  # still serving


def test_webhooks_are_off_without_a_secret(hooks) -> None:
    """With no secret configured, both webhooks answer 403 and name the variable to set."""
    server, triggered, secret = hooks
    secret["value"] = None
    for path in ("/webhook/github", "/webhook/gitlab"):
        status, answer = _json(server.url + path, PUSH_MAIN, _github(PUSH_MAIN))
        assert status == 403 and "ECS_GITOPS_WEBHOOK_SECRET" in answer["error"]
    assert triggered == []


def test_unknown_routes_methods_and_missing_length(hooks) -> None:
    """Unknown pages are 404, POST to a GET page 405, a webhook without Content-Length 411."""
    server, triggered, _ = hooks
    assert _json(server.url + "/nope")[0] == 404
    assert _json(server.url + "/healthz", b"{}")[0] == 405
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.putrequest("POST", "/webhook/github")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    assert triggered == []


def test_a_signed_push_webhook_makes_the_running_agent_tick(
    sim_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an hour-long poll interval, a signed GitHub push makes the running agent tick at once."""
    monkeypatch.setenv("ECS_GITOPS_WEBHOOK_SECRET", SECRET)
    story = Story(sim_sandbox, tmp_path, copy_example=False)
    story.commit("no manifests yet")
    agent = story.new_agent()
    agent.config = replace(agent.config, source=replace(agent.config.source, interval="1h"))
    server = agent.serve(port=0)
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    runner.start()
    try:

        def ticks() -> float:
            m = _metrics(server.url)
            return sum(v for (name, _), v in m.items() if name == "ecs_gitops_ticks_total")

        _wait_for(lambda: ticks() == 1, "the tick run() starts with")
        unsigned = _github(PUSH_MAIN, signature="sha256=bad")
        assert _json(server.url + "/webhook/github", PUSH_MAIN, unsigned)[0] == 401
        status, answer = _json(server.url + "/webhook/github", PUSH_MAIN, _github(PUSH_MAIN))
        assert (status, answer) == (200, {"triggered": True})
        _wait_for(lambda: ticks() == 2, "the tick the webhook asked for")
        assert _value(_metrics(server.url), "ecs_gitops_ticks_total", result="invalid") == 2  # no manifests
    finally:
        stop.set()
        runner.join(timeout=30)
    assert not runner.is_alive()
    with pytest.raises(OSError):
        _request(server.url + "/healthz")  # run() stopped the server it served


TAMPERED = PUSH_MAIN.replace(b"main", b"prod")  # the same length: only the content differs
SHA1 = "sha1=" + hmac.new(SECRET.encode(), PUSH_MAIN, hashlib.sha1).hexdigest()
GOOD = github_signature(SECRET, PUSH_MAIN)


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/webhook/github", TAMPERED, {**_github(PUSH_MAIN), "X-GitHub-Event": "push"}),
        ("/webhook/github", PUSH_MAIN, {"X-GitHub-Event": "push", "X-Hub-Signature": SHA1}),
        ("/webhook/github", PUSH_MAIN, _github(PUSH_MAIN, signature=GOOD[7:])),
        ("/webhook/github", PUSH_MAIN, _github(PUSH_MAIN, signature=GOOD.upper())),
        ("/webhook/github", PUSH_MAIN, _github(PUSH_MAIN, signature="sha256=ünïcødé")),
        ("/webhook/gitlab", PUSH_MAIN, {**GITLAB_PUSH, "X-Gitlab-Token": SECRET[:-1]}),
        ("/webhook/gitlab", PUSH_MAIN, {**GITLAB_PUSH, "X-Gitlab-Token": SECRET + " "}),
        ("/webhook/gitlab", PUSH_MAIN, {**GITLAB_PUSH, "X-Gitlab-Token": GOOD}),
        ("/webhook/gitlab", PUSH_MAIN, {**_github(PUSH_MAIN), "X-Gitlab-Event": "Push Hook"}),
    ],
    ids=[
        "github-signature-of-another-body",
        "github-sha1-only",
        "github-digest-without-prefix",
        "github-uppercase-digest",
        "github-non-ascii-signature",
        "gitlab-token-prefix",
        "gitlab-token-with-space",
        "gitlab-hmac-instead-of-token",
        "gitlab-with-github-signature",
    ],
)
def test_webhooks_refuse_near_miss_signatures(hooks, path: str, body: bytes, headers: dict) -> None:
    """Signatures that are almost right (another body's, SHA-1, no prefix, a token one character short,
    GitHub's header on the GitLab route) are 401 and trigger nothing."""
    server, triggered, _ = hooks
    status, answer = _json(server.url + path, body, headers)
    assert status == 401, answer
    assert triggered == []


@pytest.mark.parametrize("path", ["/webhook/github", "/webhook/gitlab"])
def test_webhook_body_at_the_cap_is_read_and_one_byte_more_is_not(hooks, path: str) -> None:
    """A body of exactly 1 MiB is read and judged by its signature; one byte more is 413 even when
    correctly signed."""
    server, triggered, _ = hooks
    head, tail = b'{"ref": "refs/heads/main", "x": "', b'"}'
    at_cap = head + b"y" * (MAX_BODY - len(head) - len(tail)) + tail
    assert len(at_cap) == MAX_BODY
    status, _ = _json(server.url + path, at_cap, {**_github(at_cap), **GITLAB_PUSH})
    assert status == 200 and triggered == [1]
    over = at_cap[:-2] + b'y"}'
    status, _ = _json(server.url + path, over, {**_github(over), **GITLAB_PUSH})
    assert status == 413 and triggered == [1]
